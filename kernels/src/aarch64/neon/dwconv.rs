//! Depthwise 3x3 on NEON: channel blocks of 8 (two q registers), then one block of 4, then a scalar
//! tail of `c % 4` channels.
//!
//! Loop nest per image: output row (its valid kernel rows are a compile-time range, so the top and
//! bottom rows skip the padding rows instead of multiplying by zero), channel block (its 9 taps and
//! bias are loaded into registers once per row: 9 x 2 + 2 of the 32 vector registers), output columns
//! (left border, interior without checks in groups of 2 columns, or 4 for the 4-channel block, so
//! that 4 accumulator chains hide the FMA latency, then the right border).
//!
//! Every output element is computed with the operations and order of the portable scalar kernel
//! (bias, then one fused multiply-add per valid tap, ky-major, then the activation of
//! [`super::act`], which equals the scalar one bit for bit), and the sums are accumulated in the
//! same order too: the tests check that this kernel equals the scalar kernel bit for bit, and the f64
//! reference within tolerance.

use core::arch::aarch64::*;

use super::act::{self, act_of_code, with_act};
use std::ops::Range;

use crate::dwconv_kxk::{self as kxk, BandArgs, KxkTier, SimdF32, kxk_entry, register_ops};
use crate::ukernel::{DwConvGeom, DwConvIo};

/// Depthwise 3x3, stride 1 or 2, padding 1, NEON, 8 channels per block: the flat output rows
/// `rows` (layouts and band contract in [`DwConvGeom`]). When `sums` is given it is overwritten
/// with the band's per-image, per-channel sums of the activated output. Writes nothing outside `output` and `sums`, reads nothing outside the
/// inputs.
///
/// # Safety
/// NEON must be available, `g.k == 3`, and [`DwConvGeom::check_io`] must accept `g`, the band
/// and the lengths of the slices (the contract of [`crate::ukernel::DwConvFn`]).
pub(crate) unsafe fn dwconv3x3_c8_neon(g: &DwConvGeom, rows: Range<usize>, io: DwConvIo<'_>) {
    kxk::debug_check_band(g, 3, &rows, &io);
    // SAFETY: NEON is available and the geometry and lengths were checked: this function's contract,
    // which is `run`'s whole contract.
    unsafe { with_act!(g.act, |A| run::<A>(g, rows, io)) }
}

/// The loop nest for activation code `ACT`: images and output rows; each row goes to [`row`] with
/// the compile-time range of its valid kernel rows.
///
/// # Safety
/// As [`dwconv3x3_c8_neon`]: NEON available, `g.check_io` accepts the band and the slice
/// lengths.
#[target_feature(enable = "neon")]
unsafe fn run<const ACT: u8>(g: &DwConvGeom, rows: Range<usize>, io: DwConvIo<'_>) {
    let (input, weights, bias, output) = (io.input, io.weights, io.bias, io.output);
    let mut sums = io.sums;
    let (h, w, c, s) = (g.h, g.w, g.c, g.stride);
    let (oh, ow) = (g.oh(), g.ow());
    // Output columns 1..int_end read input columns ox*s-1 ..= ox*s+1, all inside the image: the
    // interior. Column 0 is the left border; ox in int_end..ow (at most one) the right border.
    let int_end = if w >= 2 { (1 + (w - 2) / s).min(ow) } else { 1 };
    if let Some(t) = sums.as_deref_mut() {
        t.fill(0.0);
    }
    let r0 = rows.start;
    for fr in rows {
        let (b, oy) = (fr / oh, fr % oh);
        let sums_b = sums.as_deref_mut().map(|t| &mut t[b * c..(b + 1) * c]);
        {
            let top = oy * s == 0; // kernel row 0 would read input row -1
            let bottom = oy * s + 1 >= h; // kernel row 2 would read input row h
            // Start of input row oy*s + ky - 1 of image b, for the valid kernel rows ky.
            let row_start = |ky: usize| ((b * h + oy * s + ky - 1) * w) * c;
            let mut r = Row {
                input,
                weights,
                bias,
                output: &mut *output,
                sums: sums_b,
                rows: [
                    if top { 0 } else { row_start(0) },
                    row_start(1),
                    if bottom { 0 } else { row_start(2) },
                ],
                out: (fr - r0) * ow * c,
                c,
                w,
                s,
                ow,
                int_end,
            };
            // SAFETY: NEON is available (this function's contract); `r` satisfies the invariants of
            // `Row` for the kernel rows each arm names: `check` validated every length, rows[ky] is
            // the start of an existing input row for each ky in that range (`top`/`bottom` exclude
            // the others), `out` starts band row fr - r0 (output row oy of image b), and `sums` is image b's `c` floats.
            unsafe {
                match (top, bottom) {
                    (false, false) => row::<ACT, 0, 3>(&mut r),
                    (true, false) => row::<ACT, 1, 3>(&mut r),
                    (false, true) => row::<ACT, 0, 2>(&mut r),
                    (true, true) => row::<ACT, 1, 2>(&mut r),
                }
            }
        }
    }
}

/// One output row of one image and what computing it needs.
///
/// Invariants (established by [`run`], relied on by the `unsafe` functions below) for the kernel
/// rows `ky` in the range `KY0..KY1` the row is processed with:
/// - `input`, `weights`, `bias` hold `n*h*w*c`, `9*c` and `c` floats; `output` holds the band's rows,
/// - `rows[ky] + w * c <= input.len()` (`rows[ky]` starts input row `oy*s + ky - 1`),
/// - `out + ow * c <= output.len()` (`out` starts the output row),
/// - `sums`, when present, holds exactly `c` floats,
/// - `1 <= int_end <= ow`, and output columns `1..int_end` have all three input columns inside the
///   row, while `w == 1` exactly when column 0 lacks its right neighbour.
struct Row<'a> {
    input: &'a [f32],
    weights: &'a [f32],
    bias: &'a [f32],
    output: &'a mut [f32],
    sums: Option<&'a mut [f32]>,
    rows: [usize; 3],
    out: usize,
    c: usize,
    w: usize,
    s: usize,
    ow: usize,
    int_end: usize,
}

/// One output row: blocks of 8 channels, one block of 4, then the scalar tail.
///
/// # Safety
/// NEON must be available; `r` satisfies the invariants of [`Row`] for kernel rows `KY0..KY1`.
#[inline(always)]
unsafe fn row<const ACT: u8, const KY0: usize, const KY1: usize>(r: &mut Row<'_>) {
    let c = r.c;
    let mut ch = 0;
    while ch + 8 <= c {
        // SAFETY: NEON and the `Row` invariants are this function's contract; ch + 8 <= c.
        unsafe { block::<ACT, KY0, KY1, 2, 2>(r, ch) };
        ch += 8;
    }
    if ch + 4 <= c {
        // SAFETY: NEON and the `Row` invariants are this function's contract; ch + 4 <= c.
        unsafe { block::<ACT, KY0, KY1, 1, 4>(r, ch) };
        ch += 4;
    }
    if ch < c {
        tail::<ACT, KY0, KY1>(r, ch);
    }
}

/// Loads 4 floats at `s[i..i + 4]`.
///
/// # Safety
/// NEON must be available; `i + 4 <= s.len()`.
#[inline(always)]
unsafe fn ld(s: &[f32], i: usize) -> float32x4_t {
    debug_assert!(i + 4 <= s.len());
    // SAFETY: `i + 4 <= s.len()` (this function's contract), so the 4 floats lie inside `s`.
    unsafe { vld1q_f32(s.as_ptr().add(i)) }
}

/// Stores 4 floats at `s[i..i + 4]`.
///
/// # Safety
/// NEON must be available; `i + 4 <= s.len()`.
#[inline(always)]
unsafe fn st(s: &mut [f32], i: usize, v: float32x4_t) {
    debug_assert!(i + 4 <= s.len());
    // SAFETY: `i + 4 <= s.len()` (this function's contract), so the 4 floats lie inside `s`, which
    // is borrowed mutably.
    unsafe { vst1q_f32(s.as_mut_ptr().add(i), v) }
}

/// Channels `ch..ch + 4 * V` of one output row: taps and bias in registers, columns left to right.
///
/// # Safety
/// NEON must be available; `r` satisfies the invariants of [`Row`] for kernel rows `KY0..KY1`;
/// `ch + 4 * V <= r.c`.
#[target_feature(enable = "neon")]
unsafe fn block<
    const ACT: u8,
    const KY0: usize,
    const KY1: usize,
    const V: usize,
    const N: usize,
>(
    r: &mut Row<'_>,
    ch: usize,
) {
    let c = r.c;
    let mut wt = [[vdupq_n_f32(0.0); V]; 9];
    let mut b = [vdupq_n_f32(0.0); V];
    let mut sum = [vdupq_n_f32(0.0); V];
    for v in 0..V {
        for (tap, k) in wt.iter_mut().enumerate() {
            // SAFETY: tap * c + ch + 4 * v + 4 <= 8 * c + c = weights.len() (`Row`, ch + 4V <= c).
            k[v] = unsafe { ld(r.weights, tap * c + ch + 4 * v) };
        }
        // SAFETY: ch + 4 * v + 4 <= c = bias.len().
        b[v] = unsafe { ld(r.bias, ch + 4 * v) };
        if let Some(t) = r.sums.as_deref() {
            // Continue the running sums, so they add up in the scalar kernel's order.
            // SAFETY: ch + 4 * v + 4 <= c = t.len().
            sum[v] = unsafe { ld(t, ch + 4 * v) };
        }
    }
    let p = Pix {
        wt: &wt,
        bias: &b,
        ch,
    };
    // SAFETY: for every call below, NEON, the `Row` invariants and ch + 4V <= c are this function's
    // contract, the columns stay below `ow`, and their kernel columns exist as `Pix::run` requires:
    // column 0 starts at kernel column 1 and, when w == 1, stops before kernel column 2; columns
    // 1..int_end are interior (all three kernel columns); the columns int_end..ow lack kernel column
    // 2 only (`Row` invariants).
    unsafe {
        if r.w == 1 {
            p.run::<ACT, KY0, KY1, 1, 2, 1>(r, &mut sum, 0);
        } else {
            p.run::<ACT, KY0, KY1, 1, 3, 1>(r, &mut sum, 0);
        }
        let mut ox = 1;
        while ox + N <= r.int_end {
            p.run::<ACT, KY0, KY1, 0, 3, N>(r, &mut sum, ox);
            ox += N;
        }
        while ox < r.int_end {
            p.run::<ACT, KY0, KY1, 0, 3, 1>(r, &mut sum, ox);
            ox += 1;
        }
        while ox < r.ow {
            p.run::<ACT, KY0, KY1, 0, 2, 1>(r, &mut sum, ox);
            ox += 1;
        }
    }
    if let Some(t) = r.sums.as_deref_mut() {
        for (v, &sv) in sum.iter().enumerate() {
            // SAFETY: ch + 4 * v + 4 <= c = t.len().
            unsafe { st(t, ch + 4 * v, sv) };
        }
    }
}

/// The registers of one channel block.
struct Pix<'a, const V: usize> {
    wt: &'a [[float32x4_t; V]; 9],
    bias: &'a [float32x4_t; V],
    ch: usize,
}

impl<const V: usize> Pix<'_, V> {
    /// Output columns `ox..ox + N` of the block: bias, one FMA per tap of kernel rows `KY0..KY1` and
    /// columns `KX0..KX1` (ky-major, as the scalar kernel), activation, store, running sum.
    ///
    /// # Safety
    /// NEON must be available; `r` satisfies the invariants of [`Row`] for kernel rows `KY0..KY1`;
    /// `self.ch + 4 * V <= r.c`; `ox + N <= r.ow`; for every column `x` in `ox..ox + N` the input
    /// columns `x * s + kx - 1` for `kx` in `KX0..KX1` exist (`>= 0` and `< w`).
    #[inline(always)]
    unsafe fn run<
        const ACT: u8,
        const KY0: usize,
        const KY1: usize,
        const KX0: usize,
        const KX1: usize,
        const N: usize,
    >(
        &self,
        r: &mut Row<'_>,
        sum: &mut [float32x4_t; V],
        ox: usize,
    ) {
        let (c, s, ch) = (r.c, r.s, self.ch);
        let mut acc = [*self.bias; N];
        for ky in KY0..KY1 {
            for kx in KX0..KX1 {
                let k = &self.wt[ky * 3 + kx];
                for (j, a) in acc.iter_mut().enumerate() {
                    // Input column (ox + j) * s + kx - 1 exists (contract), so no underflow.
                    let i = r.rows[ky] + ((ox + j) * s + kx - 1) * c + ch;
                    for v in 0..V {
                        // SAFETY: NEON is available; input row `rows[ky]` holds w * c floats and
                        // this column exists, so i + 4v + 4 <= rows[ky] + w * c <= input.len()
                        // (ch + 4V <= c; `Row` invariants).
                        a[v] = unsafe { vfmaq_f32(a[v], ld(r.input, i + 4 * v), k[v]) };
                    }
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            let o = r.out + (ox + j) * c + ch;
            for v in 0..V {
                // SAFETY: NEON is available; o + 4v + 4 <= out + ow * c <= output.len() since
                // ox + j < ow and ch + 4V <= c (contract and `Row` invariants).
                unsafe {
                    let y = act::apply::<ACT>(a[v]);
                    st(r.output, o + 4 * v, y);
                    sum[v] = vaddq_f32(sum[v], y);
                }
            }
        }
    }
}

/// Channels `ch0..c` (fewer than 4) of one output row, in scalar code with bounds-checked indexing,
/// by the operations and order of the portable scalar kernel.
#[inline(always)]
fn tail<const ACT: u8, const KY0: usize, const KY1: usize>(r: &mut Row<'_>, ch0: usize) {
    let (c, w, s) = (r.c, r.w, r.s);
    let act = act_of_code(ACT);
    for ox in 0..r.ow {
        let kx0 = if ox == 0 { 1 } else { 0 };
        let kx1 = (w + 1 - ox * s).min(3);
        for ch in ch0..c {
            let mut a = r.bias[ch];
            for ky in KY0..KY1 {
                for kx in kx0..kx1 {
                    let x = r.input[r.rows[ky] + (ox * s + kx - 1) * c + ch];
                    a = x.mul_add(r.weights[(ky * 3 + kx) * c + ch], a);
                }
            }
            let y = act.apply(a);
            r.output[r.out + ox * c + ch] = y;
            if let Some(t) = r.sums.as_deref_mut() {
                t[ch] += y;
            }
        }
    }
}

kxk_entry!(dwconv5x5_c8_neon, Neon, 5, "NEON");
kxk_entry!(dwconv7x7_c8_neon, Neon, 7, "NEON");

/// The k x k blocking of this tier: two `float32x4_t` per block (8 channels), steps of 8 outputs
/// for k = 5 and 6 for k = 7: the k taps of a kernel row, the accumulators and the input column
/// use 28 of the 32 vector registers.
struct Neon;

impl KxkTier for Neon {
    const CH: usize = 8;

    /// # Safety
    /// As [`kxk::block`]; NEON must be available.
    #[target_feature(enable = "neon")]
    unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
        a: &BandArgs,
        cb: usize,
        part: usize,
    ) {
        // SAFETY: this function is compiled with NEON, which the caller guarantees, with the rest
        // of `block`'s contract.
        unsafe {
            if K == 5 {
                kxk::block::<float32x4_t, K, S, ACT, 2, 8, MASKED>(a, cb, part)
            } else {
                kxk::block::<float32x4_t, K, S, ACT, 2, 6, MASKED>(a, cb, part)
            }
        }
    }
}

// SAFETY: every method executes NEON instructions only (the aarch64 baseline), and touches memory
// only within the ranges its contract names (the masked forms go through a stack copy of the
// selected lanes).
unsafe impl SimdF32 for float32x4_t {
    const LANES: usize = 4;
    /// The number of leading lanes selected.
    type Mask = usize;

    #[inline(always)]
    unsafe fn mask_first(n: usize) -> usize {
        debug_assert!(n <= 4);
        n
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON is available (contract).
        unsafe { vdupq_n_f32(0.0) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: NEON is available (contract).
        unsafe { vdupq_n_f32(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: NEON is available and `p..p + 4` is readable (contract).
        unsafe { vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: usize) -> Self {
        let mut t = [0.0f32; 4];
        // SAFETY: the first `m` floats at `p` are readable (contract), `m <= 4`; NEON available.
        unsafe {
            core::ptr::copy_nonoverlapping(p, t.as_mut_ptr(), m);
            vld1q_f32(t.as_ptr())
        }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: NEON is available and `p..p + 4` is writable (contract).
        unsafe { vst1q_f32(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: usize, v: Self) {
        let mut t = [0.0f32; 4];
        // SAFETY: the first `m` floats at `p` are writable (contract), `m <= 4`; NEON available.
        unsafe {
            vst1q_f32(t.as_mut_ptr(), v);
            core::ptr::copy_nonoverlapping(t.as_ptr(), p, m);
        }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: NEON is available (contract). `vfmaq_f32(c, a, b)` = c + a * b, one rounding.
        unsafe { vfmaq_f32(c, a, b) }
    }
    register_ops! {
        fn add(a, b) = vaddq_f32;
    }
    #[inline(always)]
    unsafe fn act<const ACT: u8>(v: Self) -> Self {
        // SAFETY: NEON is available (contract).
        unsafe { act::apply::<ACT>(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::reference;
    use crate::scalar::dwconv::dwconv3x3_c1_scalar as dwconv3x3_scalar;
    use crate::ukernel::DwConvFn;

    const GUARD: usize = 19;

    use crate::reference::rand_vec;

    /// Runs `f` into an output surrounded by NaN guards (and NaN inside, so an unwritten element
    /// fails); checks the guards stay bit-identical and returns output and sums.
    fn run_guarded(
        f: DwConvFn,
        g: &DwConvGeom,
        x: &[f32],
        wt: &[f32],
        bias: &[f32],
        with_sums: bool,
        what: &str,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        const GUARD_BITS: u32 = 0x7fc0_beef;
        let len = g.output_shape().len();
        let sl = g.n * g.c;
        let mut out = vec![f32::from_bits(GUARD_BITS); len + 2 * GUARD];
        let mut sums = vec![f32::from_bits(GUARD_BITS); sl + 2 * GUARD];
        let io = DwConvIo {
            input: x,
            weights: wt,
            bias,
            output: &mut out[GUARD..GUARD + len],
            sums: with_sums.then(|| &mut sums[GUARD..GUARD + sl]),
        };
        assert!(g.check_io(&(0..g.rows()), &io).is_ok());
        // SAFETY: NEON is part of the aarch64 baseline (`Isa::Neon.is_available()` is asserted in
        // `crate::aarch64`), and `check_io` accepted the geometry and every length just above.
        unsafe { f(g, 0..g.rows(), io) };
        for buf in [
            &out[..GUARD],
            &out[GUARD + len..],
            &sums[..GUARD],
            &sums[GUARD + sl..],
        ] {
            for v in buf {
                assert_eq!(v.to_bits(), GUARD_BITS, "{what}: guard overwritten");
            }
        }
        if !with_sums {
            assert!(
                sums.iter().all(|v| v.to_bits() == GUARD_BITS),
                "{what}: sums written though not requested"
            );
        }
        (
            out[GUARD..GUARD + len].to_vec(),
            with_sums.then(|| sums[GUARD..GUARD + sl].to_vec()),
        )
    }

    fn close(a: f32, r: f32) -> bool {
        (a - r).abs() <= 1e-4 * r.abs().max(1.0)
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    fn check_shape(n: usize, h: usize, w: usize, c: usize, stride: usize, act: Activation) {
        let g = DwConvGeom {
            n,
            h,
            w,
            c,
            k: 3,
            stride,
            act,
        };
        let seed = (((n * 31 + h) * 31 + w) * 131 + c) as u64 * 7 + stride as u64;
        // Amplitudes put every activation's interesting region in play (relu6 clamps, GELU tails).
        let x = rand_vec(seed, n * h * w * c, 4.0);
        let wt = rand_vec(seed ^ 0xabcd, 9 * c, 1.0);
        let bias = rand_vec(seed ^ 0x1234, c, 2.0);
        let len = g.output_shape().len();
        let mut want = vec![0.0f32; len];
        let mut want_sums = vec![0.0f32; n * c];
        reference::dwconv(&g, &x, &wt, &bias, &mut want, Some(&mut want_sums)).unwrap();
        let what = format!("n{n} h{h} w{w} c{c} s{stride} {}", act.name());
        for with_sums in [false, true] {
            let (got, sums) = run_guarded(dwconv3x3_c8_neon, &g, &x, &wt, &bias, with_sums, &what);
            for (i, (&a, &r)) in got.iter().zip(&want).enumerate() {
                assert!(close(a, r), "{what}: output[{i}] = {a}, reference {r}");
            }
            let (scalar, scalar_sums) =
                run_guarded(dwconv3x3_scalar, &g, &x, &wt, &bias, with_sums, &what);
            assert!(
                same(&got, &scalar),
                "{what}: differs from the scalar kernel"
            );
            if let Some(sums) = sums {
                for (i, (&a, &r)) in sums.iter().zip(&want_sums).enumerate() {
                    assert!(close(a, r), "{what}: sums[{i}] = {a}, reference {r}");
                }
                assert!(
                    same(&sums, &scalar_sums.unwrap()),
                    "{what}: sums differ from the scalar kernel"
                );
            }
        }
    }

    #[test]
    fn matches_reference_on_every_edge_class() {
        for c in [1, 3, 4, 5, 8, 9, 17, 48] {
            for h in [1, 2, 3, 7, 12] {
                for w in [1, 2, 3, 7, 12] {
                    for stride in [1, 2] {
                        for act in Activation::ALL {
                            check_shape(1, h, w, c, stride, act);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batches_and_odd_widths() {
        for (n, h, w, c) in [(2, 5, 6, 12), (3, 4, 9, 7), (2, 13, 11, 20), (2, 1, 1, 4)] {
            for stride in [1, 2] {
                for act in Activation::ALL {
                    check_shape(n, h, w, c, stride, act);
                }
            }
        }
    }

    #[test]
    fn sums_are_overwritten_not_accumulated() {
        let g = DwConvGeom {
            n: 2,
            h: 3,
            w: 4,
            c: 9,
            k: 3,
            stride: 1,
            act: Activation::Relu,
        };
        let x = rand_vec(1, 2 * 3 * 4 * 9, 1.0);
        let wt = rand_vec(2, 81, 1.0);
        let bias = rand_vec(3, 9, 1.0);
        let mut out = vec![0.0; g.output_shape().len()];
        let mut a = vec![1e6f32; 18];
        let mut b = vec![-7.0f32; 18];
        let mut run = |sums: &mut [f32]| {
            let io = DwConvIo {
                input: &x,
                weights: &wt,
                bias: &bias,
                output: &mut out,
                sums: Some(sums),
            };
            assert!(g.check_io(&(0..g.rows()), &io).is_ok());
            // SAFETY: NEON is part of the aarch64 baseline; `check_io` accepted the lengths just
            // above.
            unsafe { dwconv3x3_c8_neon(&g, 0..g.rows(), io) };
        };
        run(&mut a);
        run(&mut b);
        assert!(same(&a, &b));
    }

    #[test]
    fn nan_and_inf_inputs_propagate_as_in_the_scalar_kernel() {
        let g = DwConvGeom {
            n: 1,
            h: 4,
            w: 5,
            c: 13,
            k: 3,
            stride: 1,
            act: Activation::Gelu,
        };
        let mut x = rand_vec(9, 4 * 5 * 13, 3.0);
        x[7] = f32::NAN;
        x[100] = f32::INFINITY;
        x[200] = f32::NEG_INFINITY;
        let wt = rand_vec(10, 9 * 13, 1.0);
        let bias = rand_vec(11, 13, 1.0);
        for act in Activation::ALL {
            let g = DwConvGeom { act, ..g };
            let (a, sa) = run_guarded(dwconv3x3_c8_neon, &g, &x, &wt, &bias, true, act.name());
            let (b, sb) = run_guarded(dwconv3x3_scalar, &g, &x, &wt, &bias, true, act.name());
            let eq = |p: &[f32], q: &[f32]| {
                p.iter()
                    .zip(q)
                    .all(|(u, v)| u.to_bits() == v.to_bits() || (u.is_nan() && v.is_nan()))
            };
            assert!(
                eq(&a, &b) && eq(&sa.unwrap(), &sb.unwrap()),
                "{}",
                act.name()
            );
        }
    }
}
