//! The depthwise 3x3 loop nest shared by the x86-64 tiers, generic over the register type
//! ([`SimdF32`]), the activation (`ACT`), the channel block (`NB` registers) and the output step
//! (`T` columns). Each tier instantiates the channel-block pass [`block`] in its own
//! `#[target_feature]` function (see [`Tier`]); the outer loops here are plain Rust.
//!
//! Loop order per image: output row, channel block of `NB` registers (the taps of the block loaded
//! once per row, into registers or, with `RELOAD`, into a small stack copy), output columns in
//! steps of `T`. Input rows outside the image are dropped at row level (`NR` = 1, 2 or 3 valid
//! tap rows, a compile-time constant). Each step computes `T` adjacent outputs, loading each input column once
//! and feeding it to every output of the step that uses it (stride 1 loads `T + 2` columns for `T`
//! outputs, stride 2 loads `2T + 1`); the first and last step of a row drop the missing tap column
//! at compile time. Channel tails use masked loads and stores; nothing outside the slices is
//! accessed.

use std::ops::Range;

use crate::dwconv_kxk::{debug_check_band, ld, st, zeroed_sums};
use crate::ukernel::{DwConvGeom, DwConvIo};
use crate::x86_64::SimdF32;

/// What one output row pass needs besides the channel block.
#[derive(Debug)]
pub(crate) struct RowArgs<const NR: usize> {
    /// The `NR` valid input rows (channel 0 of column 0), top to bottom.
    rows: [*const f32; NR],
    /// The weights of tap `(ky0, 0)`, channel 0, where `ky0` is the tap row of `rows[0]`.
    wts: *const f32,
    bias: *const f32,
    /// The output row (channel 0 of column 0).
    out: *mut f32,
    /// The sums of this image (`c` floats), or null.
    sums: *mut f32,
    w: usize,
    c: usize,
    ow: usize,
}

/// A tier's compiled channel-block pass and its blocking choices. Each tier implements it on a
/// zero-sized type whose `block` is a `#[target_feature]` function with [`block`] inlined for its
/// register type, so every (activation, stride, valid rows, tail) combination is its own function
/// of moderate size (one function per activation holding every case took minutes to compile).
pub(crate) trait Tier {
    /// Channels per block (registers per block times lanes).
    const CH: usize;

    /// One output row of the channel block at `cb` ([`block`] with the tier's register type,
    /// registers per block and step).
    ///
    /// # Safety
    /// As [`block`], with the tier's features available.
    unsafe fn block<const ACT: u8, const S: usize, const NR: usize, const MASKED: bool>(
        r: &RowArgs<NR>,
        cb: usize,
        part: usize,
    );
}

/// Runs the flat output rows `rows` of the depthwise 3x3 convolution of `g` (layouts and band
/// contract in [`DwConvGeom`]) with the channel-block passes of `P`.
///
/// # Safety
/// The features of `P`'s tier must be available, `g.k == 3`, and `g.check_io` must accept the
/// geometry, the band and the lengths of the slices.
#[inline(always)]
pub(crate) unsafe fn dwconv3x3<P: Tier, const ACT: u8>(
    g: &DwConvGeom,
    rows: Range<usize>,
    io: DwConvIo<'_>,
) {
    let (h, w, c, s) = (g.h, g.w, g.c, g.stride);
    let (oh, ow) = (g.oh(), g.ow());
    debug_check_band(g, 3, &rows, &io);
    let (input, weights, bias, output) = (io.input, io.weights, io.bias, io.output);
    let sums = zeroed_sums(io.sums);
    let wp = weights.as_ptr();
    let r0 = rows.start;
    for r in rows {
        let (b, oy) = (r / oh, r % oh);
        // SAFETY: `r < n * oh`, so `b < n`; `check_rows` guaranteed input = n*h*w*c, output =
        // (rows.end - r0)*ow*c and sums = n*c floats, so every offset below is within its slice.
        let (img, out_row, sb) = unsafe {
            (
                input.as_ptr().add(b * h * w * c),
                output.as_mut_ptr().add((r - r0) * ow * c),
                if sums.is_null() {
                    sums
                } else {
                    sums.add(b * c)
                },
            )
        };
        // Centre input row; it exists since oy <= (h - 1) / s.
        let cy = oy * s;
        let top = cy >= 1;
        let bottom = cy + 1 < h;
        macro_rules! go {
            ($s:literal, $nr:literal, $ky0:literal, [$($iy:expr),*]) => {
                // SAFETY: every row index `iy` is in 0..h (checked by `top`/`bottom` above),
                // `$ky0 * 3 * c` is within the 9*c weights, `out_row` starts a band row; the
                // remaining contract (features, lengths) is this function's.
                unsafe {
                    row::<P, ACT, $s, $nr>(&RowArgs {
                        rows: [$(img.add($iy * w * c)),*],
                        wts: wp.add($ky0 * 3 * c),
                        bias: bias.as_ptr(),
                        out: out_row,
                        sums: sb,
                        w,
                        c,
                        ow,
                    })
                }
            };
        }
        match (s, top, bottom) {
            (1, true, true) => go!(1, 3, 0, [cy - 1, cy, cy + 1]),
            (1, false, true) => go!(1, 2, 1, [cy, cy + 1]),
            (1, true, false) => go!(1, 2, 0, [cy - 1, cy]),
            (1, false, false) => go!(1, 1, 1, [cy]),
            (_, true, true) => go!(2, 3, 0, [cy - 1, cy, cy + 1]),
            (_, false, true) => go!(2, 2, 1, [cy, cy + 1]),
            (_, true, false) => go!(2, 2, 0, [cy - 1, cy]),
            (_, false, false) => go!(2, 1, 1, [cy]),
        }
    }
}

/// One output row: every channel block, full blocks of `P::CH` channels and then one masked
/// block for the rest.
///
/// # Safety
/// As [`dwconv3x3`]; `r` describes an output row of a geometry `check` accepted, as
/// [`dwconv3x3`] builds them.
#[inline(always)]
unsafe fn row<P: Tier, const ACT: u8, const S: usize, const NR: usize>(r: &RowArgs<NR>) {
    let c = r.c;
    let full_c = c - c % P::CH;
    // SAFETY: the blocks cover the channels 0..c exactly once (the last one with `part` < CH
    // channels); the rest is this function's contract.
    unsafe {
        let mut cb = 0;
        while cb < full_c {
            P::block::<ACT, S, NR, false>(r, cb, P::CH);
            cb += P::CH;
        }
        if full_c < c {
            P::block::<ACT, S, NR, true>(r, full_c, c - full_c);
        }
    }
}

/// The taps, bias and lane masks of a channel block (in registers unless `RELOAD`).
struct Taps<V: SimdF32, const NB: usize, const NR: usize> {
    w: [[[V; NB]; 3]; NR],
    bias: [V; NB],
    masks: [V::Mask; NB],
    /// With `RELOAD`: the block's taps (index `ky * 3 + kx`) and bias (index 9), copied to a
    /// small stack buffer; null otherwise.
    local: *const [V; NB],
}

/// One output row of the channel block of `NB` registers at channel `cb`, which holds
/// `part` channels (`NB * LANES` unless `MASKED`; register `v` then has the lanes that exist).
///
/// Rows wider than `T` outputs run `T`-column steps only: from column 0 on, and a last step that
/// ends at the last column and may overlap the previous step, whose outputs it recomputes bit
/// for bit (same operations in the same order), stores again and leaves out of the sums.
/// Narrower rows run one column per step.
///
/// # Safety
/// The features of `V` available; `r` as [`row`] gets it; channels `cb..cb + part` exist, with
/// `part == NB * LANES` unless `MASKED` and `1 <= part <= NB * LANES`.
#[inline(always)]
pub(crate) unsafe fn block<
    V: SimdF32,
    const ACT: u8,
    const NB: usize,
    const T: usize,
    const RELOAD: bool,
    const S: usize,
    const NR: usize,
    const MASKED: bool,
>(
    r: &RowArgs<NR>,
    cb: usize,
    part: usize,
) {
    const { assert!(T >= 2) };
    let (l, c, w, ow) = (V::LANES, r.c, r.w, r.ow);
    // The last output misses its right tap column when (ow - 1) * S + 1 >= w.
    let right_missing = (ow - 1) * S + 1 >= w;
    // SAFETY: (whole body) `mask_first` gets 0..=LANES; tap offsets (ky*3 + kx)*c + channel stay
    // within the NR*3 tap rows from `r.wts`, bias and sums offsets within c, for the channels
    // the block owns (masked when partial). Each step gets the border flags of its columns: `L`
    // exactly when it starts at column 0, `R` exactly when it ends at column ow - 1 and that
    // column misses its right input column, which is `tile`'s column contract.
    unsafe {
        let masks: [V::Mask; NB] =
            core::array::from_fn(|v| V::mask_first(part.saturating_sub(v * l).min(l)));
        let mut taps = Taps {
            w: [[[V::zero(); NB]; 3]; NR],
            bias: [V::zero(); NB],
            masks,
            local: core::ptr::null(),
        };
        // With RELOAD the steps load the taps from memory rather than keeping 9 * NB of them in
        // registers. They load them from this contiguous copy: the weights themselves lie c
        // floats apart, which with c * 4 a multiple of 1 KiB puts all nine in the few L1 sets
        // the block's input and output columns also use, and they get evicted.
        let mut copy = [[V::zero(); NB]; 10];
        if RELOAD {
            for v in 0..NB {
                for ky in 0..NR {
                    for kx in 0..3 {
                        let p = r.wts.add((ky * 3 + kx) * c + cb + v * l);
                        copy[ky * 3 + kx][v] = ld::<V, MASKED>(p, masks[v]);
                    }
                }
                copy[9][v] = ld::<V, MASKED>(r.bias.add(cb + v * l), masks[v]);
            }
            // Opaque to the optimiser, so the steps really load from the copy (instead of
            // forwarding the values into registers, which would spill).
            taps.local = core::hint::black_box(copy.as_ptr());
        }
        for (v, &m) in masks.iter().enumerate() {
            if RELOAD {
                break;
            }
            for ky in 0..NR {
                for kx in 0..3 {
                    let p = r.wts.add((ky * 3 + kx) * c + cb + v * l);
                    taps.w[ky][kx][v] = ld::<V, MASKED>(p, m);
                }
            }
            taps.bias[v] = ld::<V, MASKED>(r.bias.add(cb + v * l), m);
        }
        macro_rules! step {
            ($tt:tt, $l:tt, $r:tt, $x:expr, $skip:expr) => {
                tile::<V, ACT, NB, $tt, RELOAD, S, NR, MASKED, $l, $r>(r, cb, &taps, $x, $skip)
            };
        }
        if ow > T {
            step!(T, true, false, 0, 0);
            let mut x = T;
            while x + T < ow {
                step!(T, false, false, x, 0);
                x += T;
            }
            // x < ow <= x + T, and ow - T >= 1: the last step ends at column ow - 1 and redoes
            // x - (ow - T) outputs.
            if right_missing {
                step!(T, false, true, ow - T, x - (ow - T));
            } else {
                step!(T, false, false, ow - T, x - (ow - T));
            }
        } else if ow == T {
            if right_missing {
                step!(T, true, true, 0, 0);
            } else {
                step!(T, true, false, 0, 0);
            }
        } else if ow == 1 {
            if right_missing {
                step!(1, true, true, 0, 0);
            } else {
                step!(1, true, false, 0, 0);
            }
        } else {
            step!(1, true, false, 0, 0);
            for x in 1..ow - 1 {
                step!(1, false, false, x, 0);
            }
            if right_missing {
                step!(1, false, true, ow - 1, 0);
            } else {
                step!(1, false, false, ow - 1, 0);
            }
        }
    }
}

/// Output columns `ox..ox + TT` of one channel block: output `ox + k` uses tap columns `0..3`,
/// except `1..` for the first one when `L` and `..2` for the last one when `R`. All but the first
/// `skip` outputs are added to the sums, when wanted.
///
/// # Safety
/// As [`block`]; every input column an output reads through an allowed tap exists: for `ox + k`
/// and tap `kx`, `(ox + k) * S + kx - 1` is in `0..w`; and `ox + TT <= ow`.
#[inline(always)]
unsafe fn tile<
    V: SimdF32,
    const ACT: u8,
    const NB: usize,
    const TT: usize,
    const RELOAD: bool,
    const S: usize,
    const NR: usize,
    const MASKED: bool,
    const L: bool,
    const R: bool,
>(
    r: &RowArgs<NR>,
    cb: usize,
    taps: &Taps<V, NB, NR>,
    ox: usize,
    skip: usize,
) {
    let (l, c) = (V::LANES, r.c);
    // Tap column of output k that reads tile column j, if that tap is allowed.
    let tap = |j: usize, k: usize| -> Option<usize> {
        let kx = j.checked_sub(S * k)?;
        let lo = if L && k == 0 { 1 } else { 0 };
        let hi = if R && k + 1 == TT { 2 } else { 3 };
        (lo..hi).contains(&kx).then_some(kx)
    };
    // SAFETY: (whole body) tile column j is input column ox*S + j - 1, read only when some output
    // uses it through an allowed tap, which this function's contract says exists; outputs
    // ox..ox + TT exist; channels as in `block`.
    unsafe {
        // The copy is aligned and holds zeros in the lanes of missing channels: plain loads.
        let local = |i: usize, v: usize| V::load(taps.local.add(i).cast::<f32>().add(v * l));
        let bias = if RELOAD {
            core::array::from_fn(|v| local(9, v))
        } else {
            taps.bias
        };
        let mut acc = [bias; TT];
        for ky in 0..NR {
            // With RELOAD, this row's taps come from memory (L1) here, so only 3 * NB registers
            // hold taps at a time.
            let w: [[V; NB]; 3] = if RELOAD {
                core::array::from_fn(|kx| core::array::from_fn(|v| local(ky * 3 + kx, v)))
            } else {
                taps.w[ky]
            };
            for j in 0..(TT - 1) * S + 3 {
                if !(0..TT).any(|k| tap(j, k).is_some()) {
                    continue;
                }
                let p = r.rows[ky].add((ox * S + j - 1) * c + cb);
                for v in 0..NB {
                    let x = ld::<V, MASKED>(p.add(v * l), taps.masks[v]);
                    for (k, a) in acc.iter_mut().enumerate() {
                        if let Some(kx) = tap(j, k) {
                            a[v] = V::fma(x, w[kx][v], a[v]);
                        }
                    }
                }
            }
        }
        // Activate and store; the sum of the outputs after the first `skip` goes to the sums.
        let mut t = [V::zero(); NB];
        for (k, a) in acc.iter().enumerate() {
            let o = r.out.add((ox + k) * c + cb);
            for v in 0..NB {
                let y = V::act::<ACT>(a[v]);
                st::<V, MASKED>(o.add(v * l), taps.masks[v], y);
                if k >= skip {
                    t[v] = V::add(t[v], y);
                }
            }
        }
        if !r.sums.is_null() {
            // A read-modify-write per step keeps no register busy across steps.
            for (v, &t) in t.iter().enumerate() {
                let p = r.sums.add(cb + v * l);
                st::<V, MASKED>(
                    p,
                    taps.masks[v],
                    V::add(ld::<V, MASKED>(p, taps.masks[v]), t),
                );
            }
        }
    }
}

/// Stamps out an x86-64 tier's depthwise entry points and channel-block passes, the parts in which
/// the AVX2 and AVX-512 tiers differ only in their register type, features and blocking:
///
/// `dwconv_tier!(Tier, V, "features", "Names", isa, dw3, dw5, dw7, nv, reload, t5, t7)` defines
/// the zero-sized `Tier` with its [`Tier`] pass (3x3: `nv` registers of `V` per block, steps of
/// [`T`] columns, taps reloaded when `reload`) and its [`crate::dwconv_kxk::KxkTier`] pass (one
/// register per block, steps of `t5` (k = 5) or `t7` (k = 7) columns at stride 1 and of 4 at
/// stride 2), the entry points `dw3` (3x3, this module's loop nest), `dw5` and `dw7` (the shared
/// k x k loop nest), and a test of `dw3` against the reference on the tier `isa`.
///
/// Stride 2 runs in steps of 4 on every tier: with steps of 8 (k = 5) or 6 (k = 7) the step's
/// loop over input columns ((T - 1) * S + K = 19 or 17 iterations) is left rolled by the
/// compiler, so choosing each column's taps runs as compares and branches in the hot loop (perf
/// profile) and the step is two to three times slower than its FMA count says; steps of 4 (11 and
/// 13 iterations) are unrolled like stride 1. Measured on Zen 3 (AVX2, one thread, interleaved,
/// ReLU and sums): 5x5 56x56x72 185 -> 65 us, 7x7 56x56x96 301 -> 158 us; on Zen 4 (AVX-512, one
/// thread, criterion, two alternating runs each): 5x5 56x56x72 92-144 -> 43-57 us. Maps of 14 or
/// 7 output columns already ran in steps of 4 and are unchanged.
macro_rules! dwconv_tier {
    (
        $tier:ident, $v:ty, $features:literal, $names:literal, $isa:ident,
        $dw3:ident, $dw5:ident, $dw7:ident,
        nv: $nv:literal, reload: $reload:literal, steps: [$t5:literal, $t7:literal]
    ) => {
        #[doc = concat!("Depthwise 3x3 convolution with ", $names, " ([`crate::ukernel::DwConvFn`]).")]
        ///
        /// # Safety
        #[doc = concat!(
            $names, " must be available, and [`crate::ukernel::DwConvGeom::check_io`] must ",
            "accept `g` (with `k = 3`), the band and the lengths of the slices."
        )]
        pub(crate) unsafe fn $dw3(
            g: &$crate::ukernel::DwConvGeom,
            rows: ::std::ops::Range<usize>,
            io: $crate::ukernel::DwConvIo<'_>,
        ) {
            // SAFETY: the tier's features and the checked geometry are this function's
            // contract, which is exactly the driver's with this tier.
            unsafe {
                $crate::x86_64::with_act!(g.act, |A| $crate::x86_64::dwconv::dwconv3x3::<$tier, A>(
                    g, rows, io
                ))
            }
        }

        $crate::dwconv_kxk::kxk_entry!($dw5, $tier, 5, $names);
        $crate::dwconv_kxk::kxk_entry!($dw7, $tier, 7, $names);

        #[doc = concat!("The ", $names, " tier's blocking and compiled channel-block passes.")]
        struct $tier;

        impl $crate::dwconv_kxk::KxkTier for $tier {
            const CH: usize = <$v as $crate::x86_64::SimdF32>::LANES;

            /// # Safety
            #[doc = concat!("As [`crate::dwconv_kxk::block`]; ", $names, " must be available.")]
            #[target_feature(enable = $features)]
            unsafe fn block<const K: usize, const S: usize, const ACT: u8, const MASKED: bool>(
                a: &$crate::dwconv_kxk::BandArgs,
                cb: usize,
                part: usize,
            ) {
                use $crate::dwconv_kxk::block;
                // SAFETY: this function is compiled with the features of `V`'s vector trait,
                // which the caller guarantees the CPU has, with the rest of `block`'s contract.
                unsafe {
                    if S == 2 {
                        block::<$v, K, S, ACT, 1, 4, MASKED>(a, cb, part)
                    } else if K == 5 {
                        block::<$v, K, S, ACT, 1, $t5, MASKED>(a, cb, part)
                    } else {
                        block::<$v, K, S, ACT, 1, $t7, MASKED>(a, cb, part)
                    }
                }
            }
        }

        impl $crate::x86_64::dwconv::Tier for $tier {
            const CH: usize = $nv * <$v as $crate::x86_64::SimdF32>::LANES;

            /// # Safety
            #[doc = concat!("As [`crate::x86_64::dwconv::block`]; ", $names, " must be available.")]
            #[target_feature(enable = $features)]
            unsafe fn block<const ACT: u8, const S: usize, const NR: usize, const MASKED: bool>(
                r: &$crate::x86_64::dwconv::RowArgs<NR>,
                cb: usize,
                part: usize,
            ) {
                // SAFETY: this function is compiled with the features of `V`'s vector trait,
                // which the caller guarantees the CPU has, with the rest of `block`'s contract.
                unsafe {
                    $crate::x86_64::dwconv::block::<
                        $v,
                        ACT,
                        $nv,
                        { $crate::x86_64::dwconv::T },
                        $reload,
                        S,
                        NR,
                        MASKED,
                    >(r, cb, part)
                }
            }
        }

        #[cfg(test)]
        mod tests {
            #[test]
            fn matches_reference() {
                $crate::x86_64::test_tier($crate::Isa::$isa, || {
                    $crate::x86_64::dwconv::tests::check_against_reference(super::$dw3)
                });
            }
        }
    };
}
pub(crate) use dwconv_tier;

/// Output columns per step of the 3x3 pass on every x86-64 tier.
pub(crate) const T: usize = 4;

#[cfg(test)]
pub(crate) mod tests {
    use crate::activation::Activation;
    use crate::ukernel::{DwConvFn, DwConvGeom, DwConvIo};

    /// Deterministic values in [-1, 1).
    fn fill(seed: u64, len: usize) -> Vec<f32> {
        crate::reference::rand_vec(seed, len, 1.0)
    }

    const GUARD: usize = 37;

    fn run_one(f: DwConvFn, g: &DwConvGeom) {
        let in_len = g.n * g.h * g.w * g.c;
        // Odd offsets: slices start unaligned; input has no slack after its end.
        let inp_store = fill(g.c as u64 * 31 + g.h as u64, in_len + 1);
        let input: Vec<f32> = inp_store[1..].iter().map(|x| 3.0 * x).collect();
        let weights = fill(7 + g.w as u64, 9 * g.c);
        let bias = fill(11 + g.stride as u64, g.c);
        let out_len = g.output_shape().len();
        let mut want = vec![0.0f32; out_len];
        let mut want_sums = vec![0.0f32; g.n * g.c];
        crate::reference::dwconv(g, &input, &weights, &bias, &mut want, Some(&mut want_sums))
            .unwrap();
        for with_sums in [true, false] {
            let mut out = vec![f32::NAN; out_len + 2 * GUARD + 1];
            let mut sums = vec![f32::NAN; g.n * g.c + 2 * GUARD + 1];
            let (o0, s0) = (GUARD + 1, GUARD + 1);
            sums[s0..s0 + g.n * g.c].fill(1e9);
            let (ob, sb) = (&mut out[o0..o0 + out_len], &mut sums[s0..s0 + g.n * g.c]);
            g.check(in_len, 9 * g.c, g.c, out_len, Some(g.n * g.c))
                .unwrap();
            // SAFETY: the ISA was checked by the caller; the geometry and lengths just now.
            unsafe {
                f(
                    g,
                    0..g.rows(),
                    DwConvIo {
                        input: &input,
                        weights: &weights,
                        bias: &bias,
                        output: ob,
                        sums: with_sums.then_some(sb),
                    },
                )
            };
            for (i, (&a, &b)) in out[o0..o0 + out_len].iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{g:?} at {i}: got {a}, want {b}"
                );
            }
            let guards = out[..o0].iter().chain(&out[o0 + out_len..]);
            assert!(
                guards.into_iter().all(|x| x.is_nan()),
                "{g:?}: output guard written"
            );
            let guards = sums[..s0].iter().chain(&sums[s0 + g.n * g.c..]);
            assert!(
                guards.into_iter().all(|x| x.is_nan()),
                "{g:?}: sums guard written"
            );
            let got = &sums[s0..s0 + g.n * g.c];
            if with_sums {
                for b in 0..g.n {
                    for ch in 0..g.c {
                        let scale: f32 = (0..g.oh() * g.ow())
                            .map(|p| want[(b * g.oh() * g.ow() + p) * g.c + ch].abs())
                            .sum();
                        let (a, e) = (got[b * g.c + ch], want_sums[b * g.c + ch]);
                        assert!(
                            (a - e).abs() <= 1e-5 * (1.0 + scale),
                            "{g:?} sums[{b}, {ch}]: got {a}, want {e}"
                        );
                    }
                }
            } else {
                assert!(
                    got.iter().all(|&x| x == 1e9),
                    "{g:?}: sums written when None"
                );
            }
        }
    }

    /// Compares `f` with the reference on edge-case shapes, every activation, both strides, with and
    /// without sums, and checks that nothing outside the output and sums is written.
    pub(crate) fn check_against_reference(f: DwConvFn) {
        let sizes = [1, 2, 3, 4, 5, 7, 9, 12];
        for c in [1, 3, 8, 15, 16, 17, 24, 31, 32, 33, 48, 56] {
            for stride in [1, 2] {
                for act in Activation::ALL {
                    for &h in &sizes {
                        for &w in &sizes {
                            let n = if (h + w + c) % 3 == 0 { 2 } else { 1 };
                            run_one(
                                f,
                                &DwConvGeom {
                                    n,
                                    h,
                                    w,
                                    c,
                                    k: 3,
                                    stride,
                                    act,
                                },
                            );
                        }
                    }
                }
            }
        }
        for (h, w, c) in [(56, 56, 48), (56, 3, 17), (2, 56, 33), (13, 17, 80)] {
            for stride in [1, 2] {
                let act = if c % 2 == 0 {
                    Activation::Gelu
                } else {
                    Activation::HardSwish
                };
                run_one(
                    f,
                    &DwConvGeom {
                        n: 1,
                        h,
                        w,
                        c,
                        k: 3,
                        stride,
                        act,
                    },
                );
            }
        }
    }
}
