//! What the NEON half-precision kernels share: the half-precision instructions that stable Rust has
//! no intrinsics for (`core::arch::aarch64` types its f16 intrinsics with the unstable `f16`, and
//! has no bf16 ones), written as one-instruction `asm!` blocks on `u16` lanes, the loop nest over
//! panels and row tiles ([`run_panels`]) and the f32 epilogue of a row of a tile.
//!
//! Every asm block here is a single register-to-register instruction: it reads only its `in`
//! operands, writes only its `out`/`inout` operands (no memory, no stack, no flags), so each is
//! `options(pure, nomem, nostack, preserves_flags)` and the compiler may schedule, hoist or drop it
//! like an intrinsic. The lane index of a by-element instruction is a `const` operand (an
//! immediate). Register classes: `vreg` is any of v0-v31; the by-element half-precision `FMLA`
//! encodes its element register in 4 bits, so that operand is `vreg_low16` (v0-v15).
//!
//! Arm ARM references (DDI 0487): `FCVTN`/`FCVTL` (f32 <-> f16, Armv8.0 AdvSIMD, rounding per FPCR:
//! round to nearest even on Linux), `FMLA (by element)` half precision (FEAT_FP16, one rounding per
//! multiply-add, FPCR rounding), `BFCVTN`/`BFCVTN2` (FEAT_BF16, f32 -> bf16 round to nearest even),
//! `BFDOT (by element)` (FEAT_BF16, the `BFDotAdd` pseudocode: see [`super::half_model`]).

use core::arch::aarch64::*;
use core::arch::asm;

use super::neon::act;
use crate::ukernel::{HalfPacked, PointwiseBlock};

/// Rounds four f32 lanes to f16 (`FCVTN`, round to nearest even; beyond 65504 gives infinity).
///
/// # Safety
/// NEON must be available (part of the aarch64 baseline).
#[inline(always)]
pub(crate) unsafe fn f32x4_to_f16x4(x: float32x4_t) -> uint16x4_t {
    let r: uint16x4_t;
    // SAFETY: one AdvSIMD instruction reading `x` and writing `r`; no memory or flags.
    unsafe {
        asm!("fcvtn {r:v}.4h, {x:v}.4s", r = out(vreg) r, x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// Widens lanes 0..4 (`HI = false`) or 4..8 (`HI = true`) of eight f16 lanes to f32 (`FCVTL`,
/// `FCVTL2`; exact).
///
/// # Safety
/// NEON must be available (part of the aarch64 baseline).
#[inline(always)]
pub(crate) unsafe fn f16x8_to_f32x4<const HI: bool>(x: uint16x8_t) -> float32x4_t {
    let r: float32x4_t;
    // SAFETY: one AdvSIMD instruction reading `x` and writing `r`; no memory or flags.
    unsafe {
        if HI {
            asm!("fcvtl2 {r:v}.4s, {x:v}.8h", r = out(vreg) r, x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags));
        } else {
            asm!("fcvtl {r:v}.4s, {x:v}.4h", r = out(vreg) r, x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags));
        }
    }
    r
}

/// `acc + b * a[L]` on eight f16 lanes with one rounding per lane (`FMLA Vd.8H, Vn.8H, Vm.H[L]`).
///
/// # Safety
/// FEAT_FP16 must be available, and the caller must be compiled with `target_feature = "fp16"`
/// (the assembler rejects the instruction otherwise).
#[inline(always)]
pub(crate) unsafe fn fmla_f16_lane<const L: u32>(
    acc: uint16x8_t,
    b: uint16x8_t,
    a: uint16x4_t,
) -> uint16x8_t {
    let mut acc = acc;
    // SAFETY: one FEAT_FP16 instruction (available: contract) updating `acc` from `b` and lane L
    // (0..4, checked by the assembler) of `a`, which sits in v0-v15 as the encoding requires.
    unsafe {
        asm!("fmla {acc:v}.8h, {b:v}.8h, {a:v}.h[{l}]", acc = inout(vreg) acc, b = in(vreg) b,
            a = in(vreg_low16) a, l = const L, options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// Rounds four f32 lanes to bf16 into lanes 0..4, zeroing lanes 4..8 (`BFCVTN`, round to nearest
/// even).
///
/// # Safety
/// FEAT_BF16 must be available, and the caller must be compiled with `target_feature = "bf16"`.
#[inline(always)]
pub(crate) unsafe fn f32x4_to_bf16_lo(x: float32x4_t) -> uint16x8_t {
    let r: uint16x8_t;
    // SAFETY: one FEAT_BF16 instruction (available: contract) reading `x` and writing `r`.
    unsafe {
        asm!("bfcvtn {r:v}.4h, {x:v}.4s", r = out(vreg) r, x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// Rounds four f32 lanes to bf16 into lanes 4..8 of `lo`, keeping its lanes 0..4 (`BFCVTN2`).
///
/// # Safety
/// As [`f32x4_to_bf16_lo`].
#[inline(always)]
pub(crate) unsafe fn f32x4_to_bf16_hi(lo: uint16x8_t, x: float32x4_t) -> uint16x8_t {
    let mut r = lo;
    // SAFETY: one FEAT_BF16 instruction (available: contract) reading `x` and updating `r`.
    unsafe {
        asm!("bfcvtn2 {r:v}.8h, {x:v}.4s", r = inout(vreg) r, x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// `acc[i] += b[2i] * a[2L] + b[2i + 1] * a[2L + 1]` for the four f32 lanes `i` of `acc`, `b` and
/// `a` holding bf16 pairs (`BFDOT Vd.4S, Vn.8H, Vm.2H[L]`; rounding as [`super::half_model`]).
///
/// # Safety
/// FEAT_BF16 must be available, and the caller must be compiled with `target_feature = "bf16"`.
#[inline(always)]
pub(crate) unsafe fn bfdot_lane<const L: u32>(
    acc: float32x4_t,
    b: uint16x8_t,
    a: uint16x8_t,
) -> float32x4_t {
    let mut acc = acc;
    // SAFETY: one FEAT_BF16 instruction (available: contract) updating `acc` from `b` and pair L
    // (0..4, checked by the assembler) of `a`.
    unsafe {
        asm!("bfdot {acc:v}.4s, {b:v}.8h, {a:v}.2h[{l}]", acc = inout(vreg) acc, b = in(vreg) b,
            a = in(vreg) a, l = const L, options(pure, nomem, nostack, preserves_flags));
    }
    acc
}

/// The epilogue of one row of a tile, `v` holding `V` vectors of four output channels:
/// `y = act(v + bias)`, then `y += residual` when there is one, stored to the first `cols` columns
/// (all `4 * V` in vector stores when `cols == 4 * V`, else through a stack buffer, reading only the
/// valid columns of the residual). The same f32 operations in the same order as the f32 kernels.
///
/// # Safety
/// NEON must be available; `out` is valid for writes and `res` (when some) for reads of `cols`
/// floats; `1 <= cols <= 4 * V`.
#[inline(always)]
pub(crate) unsafe fn store_row<const ACT: u8, const V: usize>(
    v: [float32x4_t; V],
    bias: &[float32x4_t; V],
    out: *mut f32,
    res: Option<*const f32>,
    cols: usize,
) {
    let mut y = v;
    for (y, &b) in y.iter_mut().zip(bias) {
        // SAFETY: NEON is available (contract); register-only intrinsics.
        *y = unsafe { act::apply::<ACT>(vaddq_f32(*y, b)) };
    }
    // SAFETY: NEON is available; with cols == 4 * V the vector accesses cover exactly the `cols`
    // floats the contract makes valid, otherwise only the first `cols` are touched.
    unsafe {
        if cols == 4 * V {
            for (i, y) in y.iter_mut().enumerate() {
                if let Some(r) = res {
                    *y = vaddq_f32(*y, vld1q_f32(r.add(4 * i)));
                }
                vst1q_f32(out.add(4 * i), *y);
            }
        } else {
            let mut buf = [[0.0f32; 4]; V];
            for (b, y) in buf.iter_mut().zip(&y) {
                vst1q_f32(b.as_mut_ptr(), *y);
            }
            for (jj, &y) in buf.as_flattened().iter().enumerate().take(cols) {
                *out.add(jj) = match res {
                    Some(r) => y + *r.add(jj),
                    None => y,
                };
            }
        }
    }
}

/// Loads the `V * 4` biases of a panel: `bias` holds `panels * 4 * V` floats (zero past N).
///
/// # Safety
/// NEON must be available; `bias` has at least `4 * V` floats.
#[inline(always)]
pub(crate) unsafe fn load_bias<const V: usize>(bias: &[f32]) -> [float32x4_t; V] {
    assert!(bias.len() >= 4 * V);
    // SAFETY: NEON is available (contract); the 4 * V floats read were just checked in bounds.
    core::array::from_fn(|i| unsafe { vld1q_f32(bias.as_ptr().add(4 * i)) })
}

/// Rows per micro-tile of both half-precision kernels.
pub(crate) const MR: usize = 8;

/// What a micro-tile needs to know of its panel of `4 * V` output channels.
pub(crate) struct Panel<'a, const V: usize> {
    /// Input `[p][k]`, row-major.
    pub(crate) input: *const f32,
    /// The panel's packed weights (the kernel's layout, [`HalfTile::panel_len`] halves).
    pub(crate) w: &'a [u16],
    /// The panel's biases.
    pub(crate) bias: [float32x4_t; V],
    /// Residual `[p][n]`, when there is one.
    pub(crate) residual: Option<*const f32>,
    /// Output `[p][n]`.
    pub(crate) output: *mut f32,
    pub(crate) k: usize,
    pub(crate) n: usize,
    /// First output channel of the panel.
    pub(crate) j0: usize,
    /// Valid output channels of the panel: `min(4 * V, n - j0)`, at least 1.
    pub(crate) cols: usize,
}

/// A half-precision pointwise kernel's micro-tile, over panels of `4 * V` output channels (`V`
/// f32 registers of biases and of the epilogue).
pub(crate) trait HalfTile<const V: usize> {
    /// Halves of packed weights per panel for `k` input channels.
    fn panel_len(k: usize) -> usize;

    /// Rows `r..r + M` of one panel (`1 <= M <= MR`): all of K, then bias, activation, residual,
    /// store of the valid columns.
    ///
    /// # Safety
    /// The kernel's features are available; `t.input` is valid for reads of rows `r..r + M` (`k`
    /// floats each), `t.output` for writes and `t.residual` (if any) for reads of those rows (`n`
    /// floats each); `t.w.len() == Self::panel_len(t.k)`; `t.j0 + t.cols <= t.n` and
    /// `1 <= t.cols <= 4 * V`.
    unsafe fn tile<const ACT: u8, const M: usize>(t: &Panel<'_, V>, r: usize);
}

/// The loop nest of both half-precision kernels: rows `rows` and panels `panels` of
/// `out = act(in . W + bias) (+ residual)`; per panel, tiles of [`MR`] rows and one tile of 1 to 7
/// rows for the rest. Meant to be inlined into the kernel's `#[target_feature]` function.
///
/// # Safety
/// The contract of [`crate::pointwise::PointwiseHalfFn`] for the kernel `T` (panel width `4 * V`,
/// panels of [`HalfTile::panel_len`] halves), its features available. The ranges and the packed
/// lengths are checked here (a panic when out of bounds).
#[inline(always)]
pub(crate) unsafe fn run_panels<T: HalfTile<V>, const V: usize, const ACT: u8>(
    b: PointwiseBlock<'_, HalfPacked<'_>>,
) {
    let (input, output, HalfPacked { bias, weights }, rows) =
        (b.input, b.output, b.packed, &b.rows);
    let (k, n, nr) = (b.geom.k, b.geom.n, 4 * V);
    let stride = T::panel_len(k);
    b.check_half(nr, stride);
    let residual = (!b.residual.is_null()).then_some(b.residual);
    for panel in b.panels.clone() {
        let j0 = panel * nr;
        let t = Panel {
            input,
            w: &weights[panel * stride..(panel + 1) * stride],
            // SAFETY: NEON is available; the slice holds 4 * V floats (checked above).
            bias: unsafe { load_bias::<V>(&bias[j0..j0 + nr]) },
            residual,
            output,
            k,
            n,
            j0,
            cols: nr.min(n - j0),
        };
        let mut r = rows.start;
        while r + MR <= rows.end {
            // SAFETY: the features and the pointer validity are this function's contract; `t.w`
            // holds exactly `panel_len(k)` halves; j0 < n and cols = min(4 * V, n - j0); rows
            // r..r + MR lie within rows, within 0..p (both checked above).
            unsafe { T::tile::<ACT, MR>(&t, r) };
            r += MR;
        }
        // SAFETY: as for the loop above; each arm's M equals rows.end - r (0 to 7).
        unsafe {
            match rows.end - r {
                0 => {}
                1 => T::tile::<ACT, 1>(&t, r),
                2 => T::tile::<ACT, 2>(&t, r),
                3 => T::tile::<ACT, 3>(&t, r),
                4 => T::tile::<ACT, 4>(&t, r),
                5 => T::tile::<ACT, 5>(&t, r),
                6 => T::tile::<ACT, 6>(&t, r),
                _ => T::tile::<ACT, 7>(&t, r),
            }
        }
    }
}
