//! The depthwise k x k loop nest (k = 5 and 7) shared by every SIMD tier: one generic body over
//! the register type ([`SimdF32`]), instantiated per tier in its own `#[target_feature]` function
//! (see [`KxkTier`]): `dwconv5x5_c8_avx2`, `dwconv7x7_c16_avx512`, `dwconv5x5_c8_neon`, ...
//!
//! Loop order for a band of flat output rows: channel block of `NB` registers (outermost, so the
//! block's `k * k` taps are copied once per band into a small contiguous stack buffer), output row,
//! output columns in steps of `T`. For `k >= 5` the taps do not fit in registers beside the
//! accumulators, so they are streamed: each step loads the `k` taps of one kernel row from the copy
//! (L1), then slides along the input row, loading each input column once and feeding it to every
//! output of the step that uses it (`k` taps + `(T - 1) * stride + k` input loads for `T * k`
//! FMAs per kernel row and register).
//!
//! Rows outside the image are left out of the tap loop (the valid kernel rows are a range computed
//! per output row), so only the column borders are special: steps that touch a border column
//! (`BORDER`) check each input column against the image at run time, the interior steps do not.
//! A row is covered by steps of `T` from column 0 on and a last step that ends at the last column
//! and may overlap the previous one: it recomputes those outputs bit for bit (same operations in
//! the same order), stores them again and leaves them out of the sums.
//!
//! Every output is the bias, then one fused multiply-add per tap that hits the image (kernel
//! rows top to bottom, columns left to right), then the activation: the operations and order of
//! the portable scalar kernel, so the outputs equal it bit for bit. The sums add each step's
//! outputs to a running sum per channel (an order of their own).

use std::ops::Range;

use crate::ukernel::{DwConvGeom, DwConvIo};

/// One SIMD register of f32 lanes and the operations the generic loop nests need.
///
/// The one vector trait of the hand-written tiers: AVX2 (`__m256`), AVX-512 (`__m512`), NEON
/// (`float32x4_t`) and the portable tier (`wide::f32x4`) implement it, and the generic loop nests
/// (this module's k x k body, the x86-64 3x3 and GEMM bodies, the element-wise activation) are
/// written over it. Every method is `#[inline(always)]` in the implementations and executes
/// instructions of the implementing tier.
///
/// # Safety
/// Implementors must only be used inside functions compiled with (and CPUs supporting) their target
/// features; callers of each method must uphold the `# Safety` section of that method.
pub(crate) unsafe trait SimdF32: Copy {
    /// f32 lanes per register.
    const LANES: usize;
    /// A lane mask selecting the first `n` lanes.
    type Mask: Copy;

    /// Mask of the first `n` lanes (none for 0).
    ///
    /// # Safety
    /// The tier's features must be available; `n <= LANES`.
    unsafe fn mask_first(n: usize) -> Self::Mask;
    /// All lanes zero.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn zero() -> Self;
    /// Every lane `x` (a broadcast; from memory it folds into the consuming instruction).
    ///
    /// # Safety
    /// The tier's features must be available.
    // Used by the x86-64 activations (`x86_64/act.rs`); the aarch64 build has no caller yet.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    unsafe fn splat(x: f32) -> Self;
    /// Unaligned load of `LANES` floats.
    ///
    /// # Safety
    /// The tier's features must be available; `p..p + LANES` must be readable.
    unsafe fn load(p: *const f32) -> Self;
    /// Load of the lanes in `m` (the others are zero); nothing outside them is touched.
    ///
    /// # Safety
    /// The tier's features must be available; the lanes of `p` selected by `m` must be readable.
    unsafe fn load_masked(p: *const f32, m: Self::Mask) -> Self;
    /// Unaligned store of `LANES` floats.
    ///
    /// # Safety
    /// The tier's features must be available; `p..p + LANES` must be writable.
    unsafe fn store(p: *mut f32, v: Self);
    /// Store of the lanes in `m`; nothing outside them is touched.
    ///
    /// # Safety
    /// The tier's features must be available; the lanes of `p` selected by `m` must be writable.
    unsafe fn store_masked(p: *mut f32, m: Self::Mask, v: Self);
    /// `a * b + c` with one rounding.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `a + b`.
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// The activation of code `ACT` (one of the `ACT_*` constants of [`crate::activation`]).
    ///
    /// # Safety
    /// The tier's features must be available.
    unsafe fn act<const ACT: u8>(v: Self) -> Self;
}

/// The methods of a register trait ([`SimdF32`], `crate::x86_64::act::ActVec`) that are one
/// intrinsic on register operands, written as a table inside the `impl` block:
/// `register_ops! { fn add(a, b) = _mm256_add_ps; fn zero() = _mm256_setzero_ps; }` defines
/// `#[inline(always)] unsafe fn add(a: Self, b: Self) -> Self { _mm256_add_ps(a, b) }` and
/// `zero`. Every operand and the result are `Self`; methods taking memory or a scalar, or whose
/// intrinsic orders its operands otherwise, stay written out.
macro_rules! register_ops {
    ($(fn $name:ident($($arg:ident),*) = $intrinsic:path;)*) => {
        $(
            #[inline(always)]
            unsafe fn $name($($arg: Self),*) -> Self {
                // SAFETY: the intrinsic reads and writes registers only, and the method's contract
                // (the trait's) guarantees the features of the implementing tier, which include
                // the intrinsic's.
                unsafe { $intrinsic($($arg),*) }
            }
        )*
    };
}
pub(crate) use register_ops;

/// What a channel-block pass needs besides the block: the band and raw views of the buffers.
#[derive(Debug)]
pub(crate) struct BandArgs {
    input: *const f32,
    weights: *const f32,
    bias: *const f32,
    /// Start of the band's output (flat row `rows.start`).
    out: *mut f32,
    /// The `[n, c]` sums (zeroed), or null.
    sums: *mut f32,
    rows: Range<usize>,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
}

/// A tier's compiled channel-block pass: each tier implements it on a zero-sized type whose
/// `block` is a `#[target_feature]` function with [`block`] inlined for its register type, so
/// every (k, stride, activation, tail) combination is its own function of moderate size.
pub(crate) trait KxkTier {
    /// Channels per block (registers per block times lanes).
    const CH: usize;

    /// The band's rows of the channel block at `cb` ([`block`] with the tier's register type and
    /// blocking).
    ///
    /// # Safety
    /// As [`block`], with the tier's features available.
    unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
        a: &BandArgs,
        cb: usize,
        part: usize,
    );
}

/// Runs the flat output rows `rows` of the depthwise k x k convolution of `g` (`g.k == K`; layouts
/// and band contract in [`DwConvGeom`]) with the channel-block passes of `P`.
///
/// # Safety
/// The features of `P`'s tier must be available, `g.k == K`, and `g.check_io` must accept the
/// geometry, the band and the lengths of the slices.
#[inline(always)]
pub(crate) unsafe fn dwconv_kxk<P: KxkTier, const K: usize, const ACT: u8>(
    g: &DwConvGeom,
    rows: Range<usize>,
    io: DwConvIo<'_>,
) {
    debug_check_band(g, K, &rows, &io);
    let (input, weights, bias, output) = (io.input, io.weights, io.bias, io.output);
    let sums = zeroed_sums(io.sums);
    let a = BandArgs {
        input: input.as_ptr(),
        weights: weights.as_ptr(),
        bias: bias.as_ptr(),
        out: output.as_mut_ptr(),
        sums,
        rows,
        h: g.h,
        w: g.w,
        c: g.c,
        oh: g.oh(),
        ow: g.ow(),
    };
    let c = g.c;
    let full_c = c - c % P::CH;
    // SAFETY: the blocks cover the channels 0..c exactly once (the last one with `part` < CH
    // channels); `a` describes the checked buffers; the rest is this function's contract.
    unsafe {
        let mut cb = 0;
        while cb < full_c {
            if g.stride == 1 {
                P::block::<K, 1, ACT, false>(&a, cb, P::CH);
            } else {
                P::block::<K, 2, ACT, false>(&a, cb, P::CH);
            }
            cb += P::CH;
        }
        if full_c < c {
            if g.stride == 1 {
                P::block::<K, 1, ACT, true>(&a, full_c, c - full_c);
            } else {
                P::block::<K, 2, ACT, true>(&a, full_c, c - full_c);
            }
        }
    }
}

/// Debug builds: asserts the band contract every depthwise kernel states (`g.k == k`, and
/// [`DwConvGeom::check_io`] accepting the geometry, the band and the slice lengths); release
/// builds check nothing here (the safe API checked it before the call).
#[inline(always)]
pub(crate) fn debug_check_band(g: &DwConvGeom, k: usize, rows: &Range<usize>, io: &DwConvIo<'_>) {
    debug_assert!(g.k == k);
    debug_assert!(g.check_io(rows, io).is_ok());
}

/// The sums zeroed and as a raw pointer, or null without sums.
#[inline(always)]
pub(crate) fn zeroed_sums(sums: Option<&mut [f32]>) -> *mut f32 {
    match sums {
        Some(s) => {
            s.fill(0.0);
            s.as_mut_ptr()
        }
        None => core::ptr::null_mut(),
    }
}

/// Loads register `v` at `p`: masked by `m` in a `MASKED` block.
///
/// # Safety
/// `V`'s features; `p..p + LANES` readable, or only the lanes of `m` when masked.
#[inline(always)]
pub(crate) unsafe fn ld<V: SimdF32, const MASKED: bool>(p: *const f32, m: V::Mask) -> V {
    // SAFETY: this function's contract.
    unsafe {
        if MASKED {
            V::load_masked(p, m)
        } else {
            V::load(p)
        }
    }
}

/// Stores like [`ld`] loads.
///
/// # Safety
/// `V`'s features; `p..p + LANES` writable, or only the lanes of `m` when masked.
#[inline(always)]
pub(crate) unsafe fn st<V: SimdF32, const MASKED: bool>(p: *mut f32, m: V::Mask, v: V) {
    // SAFETY: this function's contract.
    unsafe {
        if MASKED {
            V::store_masked(p, m, v)
        } else {
            V::store(p, v)
        }
    }
}

/// One output row of one channel block, as the steps see it.
struct RowCtx<'a, V: SimdF32, const NB: usize, const K: usize> {
    /// Input row of kernel row `ky` (channel `cb` of column 0), valid for `ky` in `ky0..ky1`.
    rows: [*const f32; K],
    ky0: usize,
    ky1: usize,
    /// Output row (channel `cb` of column 0).
    out: *mut f32,
    /// This image's sums at channel `cb`, or null.
    sums: *mut f32,
    /// The block's taps `[ky][kx][v]` and bias, in an aligned copy with zeros in missing lanes.
    taps: *const [[V; NB]; K],
    bias: &'a [V; NB],
    masks: &'a [V::Mask; NB],
    w: usize,
    c: usize,
}

/// The band's rows of the channel block of `NB` registers at channel `cb`, holding `part`
/// channels (`NB * LANES` unless `MASKED`), with steps of `T` output columns.
///
/// # Safety
/// The features of `V` available; `a` built by [`dwconv_kxk`] from buffers `check_rows` accepted
/// with `k == K` and stride `S`; channels `cb..cb + part` exist, with `part == NB * LANES` unless
/// `MASKED` and `1 <= part <= NB * LANES`.
#[inline(always)]
pub(crate) unsafe fn block<
    V: SimdF32,
    const K: usize,
    const S: usize,
    const ACT: u8,
    const NB: usize,
    const T: usize,
    const MASKED: bool,
>(
    a: &BandArgs,
    cb: usize,
    part: usize,
) {
    const { assert!(T >= 4 && K % 2 == 1 && S >= 1 && S <= 2) };
    let (l, c, w, ow, p) = (V::LANES, a.c, a.w, a.ow, K / 2);
    // SAFETY: (whole body) `mask_first` gets 0..=LANES; tap offsets (ky*K + kx)*c + channel stay
    // within the K*K*c weights and bias offsets within c, for the channels the block owns (masked
    // when partial); rows, outputs and sums offsets as their comments say; the steps get column
    // ranges within 0..ow and the border flag wherever a column may fall outside the image, which
    // is `step`'s contract.
    unsafe {
        let masks: [V::Mask; NB] =
            core::array::from_fn(|v| V::mask_first(part.saturating_sub(v * l).min(l)));
        // The weights lie c floats apart; with c * 4 a multiple of 1 KiB all of them would map to
        // the few L1 sets the block's input and output columns also use. Copy them once per band.
        let mut taps = [[[V::zero(); NB]; K]; K];
        for (ky, row) in taps.iter_mut().enumerate() {
            for (kx, t) in row.iter_mut().enumerate() {
                for (v, t) in t.iter_mut().enumerate() {
                    let q = a.weights.add((ky * K + kx) * c + cb + v * l);
                    *t = ld::<V, MASKED>(q, masks[v]);
                }
            }
        }
        let bias: [V; NB] =
            core::array::from_fn(|v| ld::<V, MASKED>(a.bias.add(cb + v * l), masks[v]));
        // Opaque to the optimiser, so the steps really load from the copy (instead of forwarding
        // K * K * NB values into registers, which would spill).
        let tp: *const [[V; NB]; K] = core::hint::black_box(taps.as_ptr());
        // Output columns whose k input columns all lie in the image: xl..xr.
        let xl = p.div_ceil(S).min(ow);
        let xr = if w > p {
            ((w - 1 - p) / S + 1).min(ow)
        } else {
            0
        }
        .max(xl);
        for fr in a.rows.clone() {
            let (b, oy) = (fr / a.oh, fr % a.oh);
            let iy = oy * S; // input row of kernel row p
            let ky0 = p.saturating_sub(iy);
            let ky1 = (a.h + p - iy).min(K);
            // Input row of kernel row ky (iy + ky - p, in 0..h for ky in ky0..ky1), at channel cb.
            let img = a.input.add(b * a.h * w * c + cb);
            let rows: [*const f32; K] = core::array::from_fn(|ky| {
                if (ky0..ky1).contains(&ky) {
                    img.add((iy + ky - p) * w * c)
                } else {
                    core::ptr::null()
                }
            });
            let r = RowCtx {
                rows,
                ky0,
                ky1,
                // Band row fr - rows.start of the band's output.
                out: a.out.add((fr - a.rows.start) * ow * c + cb),
                sums: if a.sums.is_null() {
                    a.sums
                } else {
                    a.sums.add(b * c + cb)
                },
                taps: tp,
                bias: &bias,
                masks: &masks,
                w,
                c,
            };
            if ow % T == 0 {
                row::<V, K, S, ACT, NB, T, MASKED>(&r, ow, xl, xr);
            } else if K == 5 && S == 1 && T >= 6 && ow % 7 == 0 {
                // Every map of a 224x224 network (112, 56, 28, 14, 7) is a multiple of 7: steps of
                // 7 cover such a row exactly, where steps of 8 recompute up to 4 outputs in the
                // last step (or, on a 7- or 14-wide map, run steps of 4 over it). Registers: 7
                // accumulators + 5 taps + 1 input per register of the block. Measured on Zen 3
                // (AVX2, one thread, same run): 5x5 stride 1 at 7x7x576 34.8 -> 24.8 us, 7x7x960
                // 57.1 -> 41.8, 14x14x240 47.1 -> 36.7, 28x28x120 74.5 -> 69.2 (1.08-1.41x). Not
                // for stride 2 (2.0-2.6x slower) nor 7x7 (1.05-1.47x slower): their steps of 7 no
                // longer fit the 16 AVX2 registers.
                row::<V, K, S, ACT, NB, 7, MASKED>(&r, ow, xl, xr);
            } else if ow >= 2 * T {
                row::<V, K, S, ACT, NB, T, MASKED>(&r, ow, xl, xr);
            } else if ow >= 4 {
                row::<V, K, S, ACT, NB, 4, MASKED>(&r, ow, xl, xr);
            } else {
                for x in 0..ow {
                    step::<V, K, S, ACT, NB, 1, MASKED, true>(&r, x, 0);
                }
            }
        }
    }
}

/// One output row in steps of `TT` columns (`ow >= TT`): from column 0 on, then a last step
/// ending at column `ow - 1` that may overlap the previous one. Steps inside `xl..xr` skip the
/// border checks.
///
/// # Safety
/// As [`block`]; `r` describes an output row as [`block`] builds it; `ow >= TT`; every column
/// in `xl..xr` has its k input columns inside the image.
#[inline(always)]
unsafe fn row<
    V: SimdF32,
    const K: usize,
    const S: usize,
    const ACT: u8,
    const NB: usize,
    const TT: usize,
    const MASKED: bool,
>(
    r: &RowCtx<'_, V, NB, K>,
    ow: usize,
    xl: usize,
    xr: usize,
) {
    // SAFETY: every step covers columns x..x + TT within 0..ow; the border flag is off only when
    // x..x + TT lies in xl..xr; the rest is this function's contract.
    unsafe {
        let mut x = 0;
        while x + TT <= ow {
            if xl <= x && x + TT <= xr {
                step::<V, K, S, ACT, NB, TT, MASKED, false>(r, x, 0);
            } else {
                step::<V, K, S, ACT, NB, TT, MASKED, true>(r, x, 0);
            }
            x += TT;
        }
        if x < ow {
            // ow - TT < x < ow: redo x - (ow - TT) outputs, bit for bit, without summing them.
            let x0 = ow - TT;
            if xl <= x0 && ow <= xr {
                step::<V, K, S, ACT, NB, TT, MASKED, false>(r, x0, x - x0);
            } else {
                step::<V, K, S, ACT, NB, TT, MASKED, true>(r, x0, x - x0);
            }
        }
    }
}

/// Output columns `ox..ox + TT` of one channel block: bias, one FMA per tap whose input pixel
/// exists (kernel rows `ky0..ky1`; with `BORDER`, input columns outside `0..w` are skipped at run
/// time), activation, store; all but the first `skip` outputs are added to the sums, when wanted.
///
/// # Safety
/// As [`block`]; `ox + TT <= ow`; without `BORDER`, every input column `(ox + k) * S + kx - p` of
/// the step lies in `0..w`.
#[inline(always)]
unsafe fn step<
    V: SimdF32,
    const K: usize,
    const S: usize,
    const ACT: u8,
    const NB: usize,
    const TT: usize,
    const MASKED: bool,
    const BORDER: bool,
>(
    r: &RowCtx<'_, V, NB, K>,
    ox: usize,
    skip: usize,
) {
    let (l, c, p) = (V::LANES, r.c, K / 2);
    // Input column of step column j is ox * S + j - p.
    let base = (ox * S) as isize - p as isize;
    // SAFETY: (whole body) input columns are read only when in 0..w (checked with BORDER, by
    // contract without), from rows ky0..ky1 which exist; outputs ox..ox + TT exist; taps come from
    // the aligned copy of K rows of K taps of NB registers; channels as in `block`.
    unsafe {
        let mut acc = [*r.bias; TT];
        for ky in r.ky0..r.ky1 {
            let w: [[V; NB]; K] = *r.taps.add(ky);
            let row = r.rows[ky];
            for j in 0..(TT - 1) * S + K {
                let ix = base + j as isize;
                if BORDER && (ix < 0 || ix >= r.w as isize) {
                    continue;
                }
                let q = row.offset(ix * c as isize);
                for v in 0..NB {
                    let x = ld::<V, MASKED>(q.add(v * l), r.masks[v]);
                    for (k, a) in acc.iter_mut().enumerate() {
                        // Tap column of output k that reads step column j, if any.
                        if j >= S * k && j - S * k < K {
                            a[v] = V::fma(x, w[j - S * k][v], a[v]);
                        }
                    }
                }
            }
        }
        let mut t = [V::zero(); NB];
        for (k, a) in acc.iter().enumerate() {
            let o = r.out.add((ox + k) * c);
            for v in 0..NB {
                let y = V::act::<ACT>(a[v]);
                st::<V, MASKED>(o.add(v * l), r.masks[v], y);
                if k >= skip {
                    t[v] = V::add(t[v], y);
                }
            }
        }
        if !r.sums.is_null() {
            for (v, &t) in t.iter().enumerate() {
                let q = r.sums.add(v * l);
                st::<V, MASKED>(q, r.masks[v], V::add(ld::<V, MASKED>(q, r.masks[v]), t));
            }
        }
    }
}

/// Stamps out a tier's k x k entry point ([`crate::ukernel::DwConvFn`]): `kxk_entry!(name, Tier,
/// k, "features")` defines `name`, which turns the runtime activation into a compile-time code with
/// [`crate::activation::with_act`] and runs [`dwconv_kxk`] with `Tier`.
macro_rules! kxk_entry {
    ($name:ident, $tier:ty, $k:literal, $features:literal) => {
        #[doc = concat!(
            "Depthwise ", stringify!($k), "x", stringify!($k), " convolution with ", $features,
            " ([`crate::ukernel::DwConvFn`]; loop nest in [`crate::dwconv_kxk`])."
        )]
        ///
        /// # Safety
        #[doc = concat!(
            $features, " must be available, `g.k == ", stringify!($k), "`, and ",
            "[`crate::ukernel::DwConvGeom::check_io`] must accept `g`, the band and the ",
            "lengths of the slices."
        )]
        pub(crate) unsafe fn $name(
            g: &$crate::ukernel::DwConvGeom,
            rows: ::std::ops::Range<usize>,
            io: $crate::ukernel::DwConvIo<'_>,
        ) {
            // SAFETY: the tier's features, `g.k == k` and the checked geometry are this
            // function's contract, which is exactly the loop nest's with this tier.
            unsafe {
                $crate::activation::with_act!(g.act, |A| $crate::dwconv_kxk::dwconv_kxk::<$tier, $k, A>(
                    g, rows, io
                ))
            }
        }
    };
}
pub(crate) use kxk_entry;
