//! Portable depthwise 3x3.

use crate::dwconv::DwConv3x3Geom;

/// Portable depthwise 3x3 kernel.
///
/// # Safety
/// Safe to call with any arguments that [`DwConv3x3Geom::check`] accepts (it needs no CPU feature and
/// indexes only with bounds checks); `unsafe` only to share the kernels' function-pointer type.
pub(crate) unsafe fn dwconv3x3_scalar(
    g: &DwConv3x3Geom,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    mut sums: Option<&mut [f32]>,
) {
    let (h, w, c, s) = (g.h, g.w, g.c, g.stride);
    let (oh, ow) = (g.oh(), g.ow());
    let mut acc = vec![0.0f32; c];
    for b in 0..g.n {
        let image = &input[b * h * w * c..(b + 1) * h * w * c];
        if let Some(sums) = sums.as_deref_mut() {
            sums[b * c..(b + 1) * c].fill(0.0);
        }
        for oy in 0..oh {
            // Taps ky whose input row exists.
            let ky0 = if oy * s == 0 { 1 } else { 0 };
            let ky1 = (h + 1 - oy * s).min(3);
            for ox in 0..ow {
                let kx0 = if ox * s == 0 { 1 } else { 0 };
                let kx1 = (w + 1 - ox * s).min(3);
                acc.copy_from_slice(bias);
                for ky in ky0..ky1 {
                    let iy = oy * s + ky - 1;
                    for kx in kx0..kx1 {
                        let ix = ox * s + kx - 1;
                        let px = &image[(iy * w + ix) * c..(iy * w + ix + 1) * c];
                        let wt = &weights[(ky * 3 + kx) * c..(ky * 3 + kx + 1) * c];
                        for ((a, &x), &k) in acc.iter_mut().zip(px).zip(wt) {
                            *a = x.mul_add(k, *a);
                        }
                    }
                }
                let o = ((b * oh + oy) * ow + ox) * c;
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
}
