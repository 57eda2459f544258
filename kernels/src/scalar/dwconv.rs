//! Portable depthwise k x k: one generic body, instantiated for k = 3, 5 and 7.

use std::ops::Range;

use crate::ukernel::{DwConvGeom, DwConvIo};

/// Portable depthwise kernel of size `K` over the flat output rows `rows` (layouts in
/// [`DwConvGeom`]). Per output element: the bias, then one fused multiply-add per tap whose input
/// pixel exists (ky-major, then kx), then the activation; the sums add the outputs in storage order.
///
/// Safe to call with any arguments that [`DwConvGeom::check_io`] accepts with `g.k == K` (it
/// needs no CPU feature and indexes only with bounds checks).
fn dwconv_scalar<const K: usize>(g: &DwConvGeom, rows: Range<usize>, io: DwConvIo<'_>) {
    debug_assert_eq!(g.k, K);
    let (input, weights, bias, output) = (io.input, io.weights, io.bias, io.output);
    let mut sums = io.sums;
    let (h, w, c, s, p) = (g.h, g.w, g.c, g.stride, K / 2);
    let (oh, ow) = (g.oh(), g.ow());
    let mut acc = vec![0.0f32; c];
    if let Some(sums) = sums.as_deref_mut() {
        sums.fill(0.0);
    }
    for (band_row, r) in rows.enumerate() {
        let (b, oy) = (r / oh, r % oh);
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        // Taps ky whose input row oy * s + ky - p lies in 0..h.
        let ky0 = p.saturating_sub(oy * s);
        let ky1 = (h + p - oy * s).min(K);
        for ox in 0..ow {
            let kx0 = p.saturating_sub(ox * s);
            let kx1 = (w + p - ox * s).min(K);
            acc.copy_from_slice(bias);
            for ky in ky0..ky1 {
                let iy = oy * s + ky - p;
                for kx in kx0..kx1 {
                    let ix = ox * s + kx - p;
                    let px = &image[(iy * w + ix) * c..(iy * w + ix + 1) * c];
                    let wt = &weights[(ky * K + kx) * c..(ky * K + kx + 1) * c];
                    for ((a, &x), &k) in acc.iter_mut().zip(px).zip(wt) {
                        *a = x.mul_add(k, *a);
                    }
                }
            }
            let o = (band_row * ow + ox) * c;
            let out = &mut output[o..o + c];
            for (y, &a) in out.iter_mut().zip(&acc) {
                *y = g.act.apply(a);
            }
            if let Some(sums) = sums.as_deref_mut() {
                for (t, &y) in sums[b * c..(b + 1) * c].iter_mut().zip(out.iter()) {
                    *t += y;
                }
            }
        }
    }
}

macro_rules! scalar_entry {
    ($name:ident, $k:literal) => {
        #[doc = concat!("Portable depthwise ", stringify!($k), "x", stringify!($k), " kernel ([`crate::ukernel::DwConvFn`]).")]
        ///
        /// # Safety
        /// Safe to call with any arguments that [`DwConvGeom::check_io`] accepts (it needs no CPU
        /// feature and indexes only with bounds checks); `unsafe` only to share the kernels'
        /// function-pointer type.
        pub(crate) unsafe fn $name(g: &DwConvGeom, rows: Range<usize>, io: DwConvIo<'_>) {
            dwconv_scalar::<$k>(g, rows, io)
        }
    };
}

scalar_entry!(dwconv3x3_c1_scalar, 3);
scalar_entry!(dwconv5x5_c1_scalar, 5);
scalar_entry!(dwconv7x7_c1_scalar, 7);
