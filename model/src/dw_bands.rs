//! The threaded depthwise scheduler: a depthwise step cut into row bands chosen from the shape
//! alone, the bands shared among the threads, each band's squeeze-excite channel sums reduced in
//! band order (so the sums are the same bits for any thread count), and the NHWC -> NCHW copy of
//! the feature maps. Kept apart, in this one file, because it belongs in the kernel crate's op API
//! (a user of the kernel crate alone needs it too) and will move there; the model crate's only
//! `unsafe` is here.

use std::sync::Mutex;

use mobile_cnn_kernels::registry::{self, Op as KernelOp};
use mobile_cnn_kernels::{DwConv, DwConvGeom, Kernels, SendPtr, Shape, Tensor};

/// Target multiply-adds of one band of a depthwise step (about 1.5 us on one Zen 3/4 core with
/// AVX2 or AVX-512): small enough that a 14x14 or 7x7 layer still has several bands to share, large
/// enough that the per-band cost (one kernel call, an atomic counter) stays well below the band's
/// work.
const DW_BAND_MACS: usize = 1 << 16;

/// Depthwise steps of fewer multiply-adds run on the calling thread even when more threads are
/// allowed (see the rule at `Network::exec`); steps of at least this many (a `LayerInfo`'s
/// `flops` is twice the multiply-adds) share their row bands among the threads.
pub const DW_PARALLEL_MACS: u64 = 100_000;

/// How the output rows of a depthwise step are cut into bands: every image's `oh` rows into
/// `per_image` bands of `rows` rows (the last may be shorter). Chosen from the shape alone (never
/// from the thread count or the batch), so the per-band partial sums, and their sum in band order,
/// are the same bits for any thread count and any batch split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DwBands {
    /// Output rows per band.
    pub(crate) rows: usize,
    /// Bands per image, `ceil(oh / rows)`.
    pub(crate) per_image: usize,
}

impl DwBands {
    /// About [`DW_BAND_MACS`] per band, whole rows, at least one row.
    pub(crate) fn of(g: &DwConvGeom) -> DwBands {
        let oh = g.oh();
        let row_macs = (g.ow() * g.c * g.k * g.k).max(1);
        let rows = (DW_BAND_MACS / row_macs).clamp(1, oh.max(1));
        DwBands {
            rows,
            per_image: oh.div_ceil(rows),
        }
    }
}

/// Runs depthwise geometry `g` (output `y`, the whole `[n, oh, ow, c]`) band by band as `bands`
/// says, on the calling thread, or with `parallel` the bands shared by the threads of `k`. With `sums = Some((sums, partials))`, each band
/// writes its partial channel sums into its own `c` floats of `partials` (`[n][band][c]`), and
/// `sums` (`[n, c]`) receives, per image, the partials added in band order; with one band per
/// image the band writes `sums` directly. Either way the bits do not depend on `k`'s threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_dw_bands(
    k: &Kernels,
    parallel: bool,
    conv: &DwConv,
    g: &DwConvGeom,
    bands: DwBands,
    x: &[f32],
    y: &mut [f32],
    sums: Option<(&mut [f32], &mut [f32])>,
) -> Result<(), mobile_cnn_kernels::Error> {
    let kernel = registry::find(KernelOp::DwConv { k: g.k }, k.isa())?.dwconv()?;
    let (oh, c) = (g.oh(), g.c);
    let count = g.n * bands.per_image;
    let in_img = g.h * g.w * c;
    let out_row = g.ow() * c;
    let one = DwConvGeom { n: 1, ..*g };
    // The sums of band `i` go to the `c` floats at `i * c` of `band_sums`; `reduce` is where the
    // per-image totals go when there is more than one band per image.
    let (mut band_sums, mut reduce) = match sums {
        None => (None, None),
        Some((s, _)) if bands.per_image == 1 => (Some(s), None),
        Some((s, p)) => (Some(p), Some(s)),
    };
    assert!(y.len() == g.n * oh * out_row && x.len() == g.n * in_img);
    assert!(band_sums.as_ref().is_none_or(|s| s.len() >= count * c));
    assert!(reduce.as_ref().is_none_or(|s| s.len() == g.n * c));
    let out = SendPtr(y.as_mut_ptr());
    let bs = band_sums.as_mut().map(|s| SendPtr(s.as_mut_ptr()));
    let run_band = |band: usize| -> Result<(), mobile_cnn_kernels::Error> {
        assert!(band < count);
        let (img, oy0) = (band / bands.per_image, band % bands.per_image * bands.rows);
        let rows = bands.rows.min(oh - oy0);
        let xi = &x[img * in_img..(img + 1) * in_img];
        // SAFETY: `band < count` (asserted), so rows `oy0..oy0 + rows` of image `img` lie inside
        // `y` (`n * oh * out_row` floats, asserted), which is exclusively borrowed for the whole
        // function; `for_each_index` hands each band to one call and bands cover disjoint rows, so
        // no two threads reach the same output element.
        let o = unsafe {
            std::slice::from_raw_parts_mut(
                out.get().add((img * oh + oy0) * out_row),
                rows * out_row,
            )
        };
        // SAFETY: the band-sums buffer holds at least `count * c` floats (asserted) and is
        // exclusively borrowed for the whole function (not read until every band is done); band
        // `band` alone writes `band * c..(band + 1) * c`.
        let s = bs.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(band * c), c) });
        kernel.run_rows(&one, oy0..oy0 + rows, xi, conv.weights(), conv.bias(), o, s)
    };
    if !parallel || k.threads() <= 1 || count <= 1 {
        (0..count).try_for_each(run_band)?;
    } else {
        // Every length was checked, so a band cannot fail; should one, its error is kept and
        // returned after the call.
        let first_error = Mutex::new(None);
        k.for_each_index(count, |_, band| {
            if let Err(e) = run_band(band) {
                first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
    }
    // Fixed order: per image, band 0, then + band 1, + band 2, ... whatever thread ran which.
    if let (Some(total), Some(partials)) = (reduce.as_mut(), band_sums.as_ref()) {
        for (t, p) in total
            .chunks_exact_mut(c)
            .zip(partials.chunks_exact(bands.per_image * c))
        {
            t.copy_from_slice(&p[..c]);
            for band in p[c..].chunks_exact(c) {
                for (t, &v) in t.iter_mut().zip(band) {
                    *t += v;
                }
            }
        }
    }
    Ok(())
}

/// An NHWC activation `t` as NCHW into `data` (`t`'s length), for the feature maps.
pub(crate) fn to_nchw(t: &Tensor, data: &mut [f32]) {
    let Shape { n, h, w, c } = t.shape();
    let src = t.as_slice();
    for b in 0..n {
        for p in 0..h * w {
            let px = &src[(b * h * w + p) * c..(b * h * w + p + 1) * c];
            for (ch, &v) in px.iter().enumerate() {
                data[(b * c + ch) * h * w + p] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_cnn_kernels::Activation;

    /// The banded depthwise path against the whole-tensor kernel, on every ISA this CPU has: the
    /// outputs bitwise equal to one whole run; the channel sums bitwise the same on the calling
    /// thread and shared among 2, 3 or 5 threads, for every image the same bits as that image run
    /// alone (so a batch split cannot change them), and equal to the whole run's sums up to f32
    /// rounding. Shapes give one band per image, many bands, a short last band, stride 2 and
    /// k = 3, 5, 7; NaN guards after the output and the partial sums catch writes past a band.
    #[test]
    fn banded_depthwise_sums_are_the_same_bits_for_any_thread_count() {
        for isa in mobile_cnn_kernels::Isa::available() {
            let one = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
            for (n, h, w, c, kk, stride) in [
                (1, 7, 7, 448, 3, 1),
                (2, 23, 19, 24, 3, 1),
                (3, 30, 29, 40, 5, 2),
                (2, 17, 33, 8, 7, 1),
                (1, 61, 9, 72, 5, 1),
                (2, 5, 6, 16, 3, 2),
            ] {
                let weights: Vec<f32> = (0..c * kk * kk)
                    .map(|i| ((i * 13 % 17) as f32 - 8.0) / 16.0)
                    .collect();
                let bias: Vec<f32> = (0..c).map(|i| (i % 5) as f32 / 10.0 - 0.2).collect();
                let conv = DwConv::new(c, kk, &weights, &bias, stride, Activation::Relu).unwrap();
                let x = Tensor::from_slice(
                    Shape::new(n, h, w, c),
                    &(0..n * h * w * c)
                        .map(|i| ((i * 31 % 37) as f32 - 18.0) / 9.0)
                        .collect::<Vec<_>>(),
                )
                .unwrap();
                let g = conv.geom(x.shape()).unwrap();
                let bands = DwBands::of(&g);
                let ctx = format!("{isa} n{n} {h}x{w}x{c} k{kk} s{stride} {bands:?}");
                let mut whole = Tensor::zeros(g.output_shape()).unwrap();
                let mut whole_sums = vec![0.0; n * c];
                conv.run(&one, &x, &mut whole, Some(&mut whole_sums))
                    .unwrap();
                let run = |k: &Kernels, parallel: bool, x: &Tensor| {
                    let g = conv.geom(x.shape()).unwrap();
                    let len = g.output_shape().len();
                    let parts = g.n * bands.per_image * c;
                    // One guard float after the output and after the partial sums.
                    let mut y = vec![f32::NAN; len + 1];
                    let mut sums = vec![f32::NAN; g.n * c];
                    let mut partials = vec![f32::NAN; parts + 1];
                    run_dw_bands(
                        k,
                        parallel,
                        &conv,
                        &g,
                        bands,
                        x.as_slice(),
                        &mut y[..len],
                        Some((&mut sums, &mut partials[..parts])),
                    )
                    .unwrap();
                    assert!(y[len].is_nan() && partials[parts].is_nan(), "{ctx}: guard");
                    y.truncate(len);
                    (y, sums)
                };
                let (y1, s1) = run(&one, false, &x);
                assert_eq!(y1, whole.as_slice(), "{ctx}: banded output");
                for (a, b) in s1.iter().zip(&whole_sums) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (g.oh() * g.ow()) as f32 * b.abs().max(1.0),
                        "{ctx}: banded sum {a} vs whole {b}"
                    );
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for threads in [2, 3, 5] {
                    let k = one.clone().with_threads(threads).unwrap();
                    let (y, s) = run(&k, true, &x);
                    assert_eq!(bits(&y), bits(&y1), "{ctx}: {threads} threads, output");
                    assert_eq!(bits(&s), bits(&s1), "{ctx}: {threads} threads, sums");
                }
                let img = h * w * c;
                for b in 0..n {
                    let xb = Tensor::from_slice(
                        Shape::new(1, h, w, c),
                        &x.as_slice()[b * img..(b + 1) * img],
                    )
                    .unwrap();
                    let (_, s) = run(&one, false, &xb);
                    assert_eq!(bits(&s), bits(&s1[b * c..(b + 1) * c]), "{ctx}: image {b}");
                }
            }
        }
    }
}
