//! The threaded depthwise: a layer's output rows cut into bands chosen from the shape alone, the
//! bands shared among the threads of a [`Kernels`], and the per-band squeeze-excite sums added in
//! band order, so outputs and sums are the same bits for any thread count and any batch split
//! ([`crate::DwConv::run_bands`]).

use std::sync::Mutex;

use crate::Kernels;
use crate::error::{Error, Result};
use crate::registry::DwConvKernel;
use crate::tensor::SendPtr;
use crate::ukernel::DwConvGeom;

/// Target multiply-adds of one band of a depthwise layer (about 1.5 us on one Zen 3/4 core with
/// AVX2 or AVX-512): small enough that a 14x14 or 7x7 layer still has several bands to share,
/// large enough that the per-band cost (one kernel call, an atomic counter) stays well below the
/// band's work.
pub const DW_BAND_MACS: usize = 1 << 16;

/// Depthwise layers of fewer multiply-adds run on the calling thread even when more threads are
/// allowed; layers of at least this many share their row bands among the threads. The depthwise
/// kernels run at about 40 multiply-adds per ns on one thread (stride 2 at about 10), so 100k
/// multiply-adds are 2.5 us or more; with the spinning pool and contiguous shares, 28x28x112
/// stride 2 and 7x7x448 (about 200k) gain 1.2-1.6x split (Zen 3, AVX2).
pub const DW_PARALLEL_MACS: u64 = 100_000;

/// How the output rows of a depthwise layer are cut into bands: every image's `oh` rows into
/// `per_image` bands of `rows` rows (the last may be shorter). Chosen from the shape alone (never
/// from the thread count or the batch), so the per-band partial sums, and their sum in band order,
/// are the same bits for any thread count and any batch split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DwBands {
    /// Output rows per band.
    pub rows: usize,
    /// Bands per image, `ceil(oh / rows)`.
    pub per_image: usize,
}

impl DwBands {
    /// About [`DW_BAND_MACS`] per band, whole rows, at least one row.
    pub fn of(g: &DwConvGeom) -> DwBands {
        let oh = g.oh();
        let row_macs = (g.ow() * g.c * g.k * g.k).max(1);
        let rows = (DW_BAND_MACS / row_macs).clamp(1, oh.max(1));
        DwBands {
            rows,
            per_image: oh.div_ceil(rows),
        }
    }

    /// Floats of scratch for the per-band partial sums of geometry `g`: `n * per_image * c`, or 0
    /// with one band per image (each band then writes the sums itself).
    pub fn partials_len(&self, g: &DwConvGeom) -> usize {
        if self.per_image > 1 {
            g.n * self.per_image * g.c
        } else {
            0
        }
    }

    /// Whether a layer of geometry `g` shares its bands among `kernels`' threads: more than one
    /// thread, more than one band and at least [`DW_PARALLEL_MACS`] multiply-adds.
    pub fn parallel(&self, kernels: &Kernels, g: &DwConvGeom) -> bool {
        kernels.threads() > 1 && g.n * self.per_image > 1 && g.macs() >= DW_PARALLEL_MACS
    }
}

/// Runs geometry `g` (input `x` `[n, h, w, c]`, output `y` the whole `[n, oh, ow, c]`) band by band
/// as `bands` says, on the calling thread, or with `parallel` the bands shared by the threads of
/// `k`. With `sums = Some((sums, partials))`, each band writes its partial channel sums into its
/// own `c` floats of `partials` (`[n][band][c]`, at least [`DwBands::partials_len`] floats), and
/// `sums` (`[n, c]`) receives, per image, the partials added in band order; with one band per
/// image the band writes `sums` directly. Either way the bits do not depend on `k`'s threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_bands(
    k: &Kernels,
    parallel: bool,
    kernel: &DwConvKernel,
    g: &DwConvGeom,
    bands: DwBands,
    weights: &[f32],
    bias: &[f32],
    x: &[f32],
    y: &mut [f32],
    sums: Option<(&mut [f32], &mut [f32])>,
) -> Result<()> {
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
    if y.len() != g.n * oh * out_row || x.len() != g.n * in_img {
        return Err(Error::shape(
            "dwconv input and output",
            format!("{} and {} floats", g.n * in_img, g.n * oh * out_row),
            format!("{} and {}", x.len(), y.len()),
        ));
    }
    if let Some(s) = &band_sums
        && s.len() < count * c
    {
        return Err(Error::shape(
            "dwconv band sums",
            format!("at least {} floats", count * c),
            s.len(),
        ));
    }
    if let Some(s) = &reduce
        && s.len() != g.n * c
    {
        return Err(Error::shape("dwconv sums [n, c]", g.n * c, s.len()));
    }
    let out = SendPtr(y.as_mut_ptr());
    let bs = band_sums.as_mut().map(|s| SendPtr(s.as_mut_ptr()));
    let run_band = |band: usize| -> Result<()> {
        assert!(band < count);
        let (img, oy0) = (band / bands.per_image, band % bands.per_image * bands.rows);
        let rows = bands.rows.min(oh - oy0);
        let xi = &x[img * in_img..(img + 1) * in_img];
        // SAFETY: `band < count` (asserted), so rows `oy0..oy0 + rows` of image `img` lie inside
        // `y` (`n * oh * out_row` floats, checked above), which is exclusively borrowed for the
        // whole function; `for_each_index` hands each band to one call and bands cover disjoint
        // rows, so no two threads reach the same output element.
        let o = unsafe {
            std::slice::from_raw_parts_mut(
                out.get().add((img * oh + oy0) * out_row),
                rows * out_row,
            )
        };
        // SAFETY: the band-sums buffer holds at least `count * c` floats (checked above) and is
        // exclusively borrowed for the whole function (not read until every band is done); band
        // `band` alone writes `band * c..(band + 1) * c`.
        let s = bs.map(|p| unsafe { std::slice::from_raw_parts_mut(p.get().add(band * c), c) });
        kernel.run_rows(&one, oy0..oy0 + rows, xi, weights, bias, o, s)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::tensor::{Shape, Tensor};
    use crate::{DwConv, Isa, reference};

    fn rand_vec(seed: u64, len: usize) -> Vec<f32> {
        reference::rand_vec(seed, len, 1.0)
    }

    /// Outputs and squeeze-excite sums of `run_bands` are the same bits at 1 and 2 threads (bands
    /// shared or not), the outputs the same bits as one whole call, and both match the f64
    /// reference; on every tier this CPU has, for shapes with one and several bands per image.
    #[test]
    fn bands_give_the_same_bits_for_any_thread_count() {
        // (n, h, w, c, k, stride): 7, 28, 3 and 1 bands per image; the first three are above
        // DW_PARALLEL_MACS (bands shared at two threads), the last below.
        let shapes = [
            (1, 56, 56, 16, 3, 1),
            (2, 28, 28, 32, 7, 1),
            (2, 29, 27, 24, 5, 2),
            (1, 7, 7, 64, 3, 1),
        ];
        for isa in Isa::available() {
            let one = Kernels::with_isa(isa).unwrap().with_threads(1).unwrap();
            let two = Kernels::with_isa(isa).unwrap().with_threads(2).unwrap();
            for (i, &(n, h, w, c, k, stride)) in shapes.iter().enumerate() {
                let seed = i as u64 + 1;
                let weights = rand_vec(seed, k * k * c);
                let bias = rand_vec(seed ^ 7, c);
                let act = Activation::Relu;
                let dw1 =
                    DwConv::create_tap_major(&one, c, k, &weights, &bias, stride, act).unwrap();
                let dw2 =
                    DwConv::create_tap_major(&two, c, k, &weights, &bias, stride, act).unwrap();
                let x =
                    Tensor::from_slice(Shape::new(n, h, w, c), &rand_vec(seed ^ 3, n * h * w * c))
                        .unwrap();
                let out_shape = dw1.output_shape(x.shape()).unwrap();
                let g = dw1.geom(x.shape()).unwrap();
                let bands = DwBands::of(&g);
                let run = |dw: &DwConv, k: &Kernels, with_sums: bool| {
                    let mut y = Tensor::zeros(out_shape).unwrap();
                    let mut sums = vec![f32::NAN; n * c];
                    let mut partials = vec![f32::NAN; dw.band_partials_len(x.shape()).unwrap()];
                    let s = with_sums.then_some((&mut sums[..], &mut partials[..]));
                    dw.run_bands(k, &x, &mut y, s).unwrap();
                    (y.as_slice().to_vec(), sums)
                };
                let (y1, s1) = run(&dw1, &one, true);
                let (y2, s2) = run(&dw2, &two, true);
                let (y0, _) = run(&dw2, &two, false);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let what = format!("{isa} shape {i}, {} bands per image", bands.per_image);
                assert_eq!(bits(&y1), bits(&y2), "{what}: outputs, 1 vs 2 threads");
                assert_eq!(bits(&s1), bits(&s2), "{what}: sums, 1 vs 2 threads");
                assert_eq!(bits(&y0), bits(&y2), "{what}: outputs without sums");
                let mut whole = Tensor::zeros(out_shape).unwrap();
                dw1.run(&one, &x, &mut whole, None).unwrap();
                assert_eq!(
                    bits(whole.as_slice()),
                    bits(&y1),
                    "{what}: outputs vs one call"
                );
                // Against the f64 reference: outputs within a few f32 roundings of terms of
                // magnitude <= 1, sums within 1e-5 of the sum of magnitudes.
                let mut want = vec![0.0; out_shape.len()];
                let mut want_sums = vec![0.0; n * c];
                reference::dwconv(
                    &g,
                    x.as_slice(),
                    &weights,
                    &bias,
                    &mut want,
                    Some(&mut want_sums),
                )
                .unwrap();
                for (j, (&got, &e)) in y1.iter().zip(&want).enumerate() {
                    assert!(
                        (got - e).abs() <= 1e-5 * (k * k + 1) as f32,
                        "{what}: output {j}: {got} vs {e}"
                    );
                }
                let pixels = (out_shape.h * out_shape.w) as f32;
                for (j, (&got, &e)) in s1.iter().zip(&want_sums).enumerate() {
                    let tol = 1e-5 * pixels * (k * k + 1) as f32;
                    assert!((got - e).abs() <= tol, "{what}: sum {j}: {got} vs {e}");
                }
            }
        }
    }

    #[test]
    fn bands_are_sized_from_the_shape() {
        let g = DwConvGeom {
            n: 2,
            h: 56,
            w: 56,
            c: 16,
            k: 3,
            stride: 1,
            act: Activation::Identity,
        };
        // 56 * 16 * 9 = 8064 multiply-adds per row: 8 rows per band, 7 bands per image.
        let b = DwBands::of(&g);
        assert_eq!((b.rows, b.per_image), (8, 7));
        assert_eq!(b.partials_len(&g), 2 * 7 * 16);
        let small = DwConvGeom {
            h: 7,
            w: 7,
            c: 448,
            ..g
        };
        assert_eq!(DwBands::of(&small).per_image, 4); // 2 rows per band
        let tiny = DwConvGeom {
            h: 2,
            w: 2,
            c: 4,
            ..g
        };
        let b = DwBands::of(&tiny);
        assert_eq!((b.rows, b.per_image, b.partials_len(&tiny)), (2, 1, 0));
    }
}
