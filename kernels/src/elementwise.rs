//! Memory-bound element-wise and reduction ops: activation in place, add, per-channel scale (the
//! excite of squeeze-excite applied to a tensor), per-channel sums and global average pooling.
//!
//! Each op is written once as a plain loop over channels and compiled once per ISA under that ISA's
//! `#[target_feature]` (the `multiversion!` macro below), so each tier runs its own full-width vector
//! code; these loops are bound by memory bandwidth, where hand-scheduling gains nothing. GELU and the
//! other activations in place use the same vector activation routines as the fused epilogues.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};
use crate::{Isa, Kernels};

/// Defines `fn $name(isa: Isa, args..)` that runs `$body(args..)` compiled for `isa`.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($a:ident: $t:ty),*) => $body:ident) => {
        $(#[$doc])*
        fn $name(isa: Isa, $($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($a: $t),*) {
                $body($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            fn avx512($($a: $t),*) {
                $body($($a),*)
            }
            #[cfg(target_arch = "aarch64")]
            #[target_feature(enable = "neon")]
            fn neon($($a: $t),*) {
                $body($($a),*)
            }
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: every `Isa` held by a `Kernels` was checked available, and AVX2 implies
                // AVX2+FMA in `isa.rs`; the body is safe code.
                Isa::Avx2 if isa.is_available() => unsafe { avx2($($a),*) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above; the AVX-512 tier implies AVX-512F, AVX2 and FMA.
                Isa::Avx512 if isa.is_available() => unsafe { avx512($($a),*) },
                #[cfg(target_arch = "aarch64")]
                // SAFETY: as above, NEON was detected.
                Isa::Neon if isa.is_available() => unsafe { neon($($a),*) },
                _ => $body($($a),*),
            }
        }
    };
}
pub(crate) use multiversion;

#[inline(always)]
fn add_body(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

#[inline(always)]
fn scale_body(data: &mut [f32], scale: &[f32]) {
    for px in data.chunks_exact_mut(scale.len()) {
        for (d, s) in px.iter_mut().zip(scale) {
            *d *= *s;
        }
    }
}

#[inline(always)]
fn sums_body(data: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for px in data.chunks_exact(out.len()) {
        for (o, x) in out.iter_mut().zip(px) {
            *o += *x;
        }
    }
}

#[inline(always)]
fn act_body(data: &mut [f32], act: Activation) {
    for v in data.iter_mut() {
        *v = act.apply(*v);
    }
}

multiversion!(fn add_isa(dst: &mut [f32], src: &[f32]) => add_body);
multiversion!(fn scale_isa(data: &mut [f32], scale: &[f32]) => scale_body);
multiversion!(fn sums_isa(data: &[f32], out: &mut [f32]) => sums_body);

/// Applies `act` to every element in place (for where it is not fused into a kernel's store).
pub fn activation_in_place(kernels: &Kernels, act: Activation, data: &mut [f32]) {
    let isa = kernels.isa();
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::Avx512) {
        crate::x86_64::act_in_place(isa, act, data);
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if isa == Isa::Neon {
        crate::aarch64::neon::act::act_in_place(act, data);
        return;
    }
    act_body(data, act);
}

/// `dst += src`, element-wise. Errors when the lengths differ.
pub fn add_in_place(kernels: &Kernels, dst: &mut [f32], src: &[f32]) -> Result<()> {
    if dst.len() != src.len() {
        return Err(Error::shape("add operand", dst.len(), src.len()));
    }
    add_isa(kernels.isa(), dst, src);
    Ok(())
}

/// Elements of a tensor below which [`scale_channels_in_place`] runs on the calling thread: about
/// 2 us of work on one core (a parallel call of the kernels' pool costs about 1 us when its threads
/// are spinning). Above it the pixels are cut into one contiguous run per thread, the rows the same
/// thread's share of the pointwise step after it reads (see `pool.rs`).
const SCALE_PARALLEL_ELEMS: usize = 1 << 14;

/// Multiplies channel `c` of image `b` by `scale[b * C + c]` in place (`t` is NHWC `[n, h, w, C]`).
pub fn scale_channels_in_place(kernels: &Kernels, t: &mut Tensor, scale: &[f32]) -> Result<()> {
    let s = t.shape();
    if scale.len() != s.n * s.c {
        return Err(Error::shape("channel scale [n, c]", s.n * s.c, scale.len()));
    }
    let c = s.c.max(1);
    let data = t.as_mut_slice();
    let parts = if data.len() >= SCALE_PARALLEL_ELEMS {
        kernels.threads()
    } else {
        1
    };
    let isa = kernels.isa();
    kernels.for_each_pixel_run(data, c, s.h * s.w, parts, |img, _, run| {
        scale_isa(isa, run, &scale[img * c..(img + 1) * c])
    });
    Ok(())
}

/// Per-image, per-channel sums of an NHWC tensor into `out` (`[n, c]`, overwritten).
pub fn channel_sums(kernels: &Kernels, t: &Tensor, out: &mut [f32]) -> Result<()> {
    let s = t.shape();
    if out.len() != s.n * s.c {
        return Err(Error::shape("channel sums [n, c]", s.n * s.c, out.len()));
    }
    let per_image = s.h * s.w * s.c;
    for (img, o) in t
        .as_slice()
        .chunks_exact(per_image.max(1))
        .zip(out.chunks_exact_mut(s.c.max(1)))
    {
        sums_isa(kernels.isa(), img, o);
    }
    Ok(())
}

/// Global average pooling: NHWC `[n, h, w, c]` to `[n, c]` means (overwritten).
///
/// ```
/// use mobile_cnn_kernels::{Kernels, Shape, Tensor, elementwise::global_avg_pool};
/// let t = Tensor::from_slice(Shape::new(1, 2, 1, 2), &[1.0, 10.0, 3.0, 20.0]).unwrap();
/// let mut out = [0.0; 2];
/// global_avg_pool(&Kernels::new().unwrap(), &t, &mut out).unwrap();
/// assert_eq!(out, [2.0, 15.0]);
/// ```
pub fn global_avg_pool(kernels: &Kernels, t: &Tensor, out: &mut [f32]) -> Result<()> {
    channel_sums(kernels, t, out)?;
    let Shape { h, w, .. } = t.shape();
    let inv = 1.0 / (h * w) as f32;
    for v in out.iter_mut() {
        *v *= inv;
    }
    Ok(())
}
