//! Memory-bound element-wise and reduction ops: activation in place, add, per-channel scale (the
//! excite of squeeze-excite applied to a tensor), per-channel sums and global average pooling.
//!
//! Each op is written once over [`pulp`]'s SIMD vectors (`Level` maps the kernels' tier to
//! pulp's level: x86-64-v4, v3, NEON or scalar) and pulp compiles it once per level under that
//! level's `#[target_feature]`. These loops are bound by memory bandwidth, where hand-scheduling per
//! tier has nothing to win: on AVX2 (Zen 3) the pulp bodies run level with the per-tier loops they
//! replaced (0.80-1.06x of their time, `results/amd-epyc-zen3-2026-11-30-portable/`). Every lane
//! does the scalar operation in the same order (the channel sums add pixel after pixel), so every
//! tier gives the same bits.
//!
//! The activation in place is the one op here that keeps hand tiers (AVX2, AVX-512, NEON; registry
//! entries [`crate::registry::Op::Activation`]): it runs the vector activation routines of the fused
//! epilogues (GELU's polynomial, hard-swish, ...), so an activation gives the same bits whether fused
//! into a kernel's store or applied here. pulp has no such routines (no exp or erf), and writing them
//! again over pulp would be a second copy of the same polynomials.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::registry::{self, Op};
use crate::tensor::{Shape, Tensor};
pub use crate::ukernel::ActivationFn;
use crate::{Isa, Kernels};
use pulp::{Simd, WithSimd};

/// The [`pulp`] SIMD level of a tier, detected once (when an op binds it): x86-64-v4 (512-bit)
/// for the AVX-512 tier, x86-64-v3 (256-bit, AVX2 + FMA) for the AVX2 tier, NEON for the NEON
/// tier, pulp's scalar lanes for the scalar and portable tiers (compiled for the target's baseline,
/// which the compiler may vectorise: SSE2 on x86-64, NEON on aarch64). pulp compiles an op once
/// per level under that level's `#[target_feature]`, so one body serves every tier. A level pulp
/// does not detect on this CPU (its x86-64-v3 also asks for BMI1/2, LZCNT, MOVBE and F16C; its v4
/// for AVX-512 BW/CD/DQ/VL) falls back to the next lower one, down to scalar: same results, fewer
/// lanes. The variants hold pulp's proof tokens, so running needs no further check.
#[derive(Debug, Clone, Copy)]
enum Level {
    #[cfg(target_arch = "x86_64")]
    V4(pulp::x86::V4),
    #[cfg(target_arch = "x86_64")]
    V3(pulp::x86::V3),
    #[cfg(target_arch = "aarch64")]
    Neon(pulp::aarch64::Neon),
    Scalar,
}

impl Level {
    /// The level of `isa` on this CPU.
    fn of(isa: Isa) -> Level {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                if let Some(simd) = pulp::x86::V4::try_new() {
                    return Level::V4(simd);
                }
                if let Some(simd) = pulp::x86::V3::try_new() {
                    return Level::V3(simd);
                }
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                if let Some(simd) = pulp::x86::V3::try_new() {
                    return Level::V3(simd);
                }
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => {
                if let Some(simd) = pulp::aarch64::Neon::try_new() {
                    return Level::Neon(simd);
                }
            }
            _ => {}
        }
        Level::Scalar
    }

    /// Runs `op` at this level.
    #[inline]
    fn run<Op: WithSimd>(self, op: Op) -> Op::Output {
        match self {
            #[cfg(target_arch = "x86_64")]
            Level::V4(simd) => Simd::vectorize(simd, op),
            #[cfg(target_arch = "x86_64")]
            Level::V3(simd) => Simd::vectorize(simd, op),
            #[cfg(target_arch = "aarch64")]
            Level::Neon(simd) => Simd::vectorize(simd, op),
            Level::Scalar => Simd::vectorize(pulp::Scalar::new(), op),
        }
    }
}

/// `f` applied to every element of a slice, compiled under a SIMD level (`Level`) (the
/// compiler vectorises the loop where `f` allows). For element-wise maps with no vector form of
/// their own, such as the SE gates' sigmoid.
struct MapInPlace<'a, F>(&'a mut [f32], F);

impl<F: Fn(f32) -> f32> WithSimd for MapInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for v in self.0.iter_mut() {
            *v = (self.1)(*v);
        }
    }
}

/// `dst += src` element-wise (equal lengths).
struct Add<'a> {
    dst: &'a mut [f32],
    src: &'a [f32],
}

impl WithSimd for Add<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (dst, dst_tail) = S::as_mut_simd_f32s(self.dst);
        let (src, src_tail) = S::as_simd_f32s(self.src);
        for (d, s) in dst.iter_mut().zip(src) {
            *d = simd.add_f32s(*d, *s);
        }
        for (d, s) in dst_tail.iter_mut().zip(src_tail) {
            *d += *s;
        }
    }
}

/// Each pixel of `data` (runs of `scale.len()` channels) multiplied by `scale`, lane by lane.
struct Scale<'a> {
    data: &'a mut [f32],
    scale: &'a [f32],
}

impl WithSimd for Scale<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (scale, scale_tail) = S::as_simd_f32s(self.scale);
        let tail = (!scale_tail.is_empty()).then(|| simd.partial_load_f32s(scale_tail));
        for px in self.data.chunks_exact_mut(self.scale.len()) {
            let (px, px_tail) = S::as_mut_simd_f32s(px);
            for (d, s) in px.iter_mut().zip(scale) {
                *d = simd.mul_f32s(*d, *s);
            }
            if let Some(t) = tail {
                let v = simd.mul_f32s(simd.partial_load_f32s(px_tail), t);
                simd.partial_store_f32s(px_tail, v);
            }
        }
    }
}

/// `out[c]` = the sum over the pixels of `data` (runs of `out.len()` channels) of channel `c`,
/// added in pixel order.
struct Sums<'a> {
    data: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Sums<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let c = self.out.len();
        self.out.fill(0.0);
        let (out, out_tail) = S::as_mut_simd_f32s(self.out);
        let mut tail = simd.partial_load_f32s(out_tail);
        for px in self.data.chunks_exact(c) {
            let (px, px_tail) = S::as_simd_f32s(px);
            for (o, x) in out.iter_mut().zip(px) {
                *o = simd.add_f32s(*o, *x);
            }
            if !px_tail.is_empty() {
                tail = simd.add_f32s(tail, simd.partial_load_f32s(px_tail));
            }
        }
        simd.partial_store_f32s(out_tail, tail);
    }
}

/// The element-wise ops bound to one tier: the registry's in-place activation kernel and the
/// [`pulp`] SIMD level of the memory-bound ops, both chosen once, when the object is made (as an
/// XNNPACK config is filled once), then run with no lookup. Ops that hold one (squeeze-excite)
/// make it at construction.
///
/// ```
/// use mobile_cnn_kernels::{Activation, Kernels, elementwise::Elementwise};
/// let k = Kernels::new().unwrap();
/// let ew = Elementwise::new(&k).unwrap();
/// let mut x = [-1.0f32, 2.0, 3.0];
/// ew.add_in_place(&mut x, &[1.0, 1.0, 1.0]).unwrap();
/// ew.activation_in_place(Activation::Relu, &mut x);
/// assert_eq!(x, [0.0, 3.0, 4.0]);
/// ```
#[derive(Clone, Copy)]
pub struct Elementwise {
    isa: Isa,
    level: Level,
    /// The registry's activation kernel for `isa` (available: checked when bound).
    activation: ActivationFn,
}

impl std::fmt::Debug for Elementwise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elementwise")
            .field("isa", &self.isa)
            .field("level", &self.level)
            .finish()
    }
}

impl Elementwise {
    /// Binds the ops of `kernels`' tier.
    pub fn new(kernels: &Kernels) -> Result<Self> {
        Self::for_isa(kernels.isa())
    }

    /// Binds the ops of `isa`; an error if this CPU lacks it (or, never in a released crate, the
    /// registry has no activation kernel for it).
    pub fn for_isa(isa: Isa) -> Result<Self> {
        let isa = isa.check("the API")?;
        let activation = registry::find(Op::Activation, isa)?.activation_fn()?;
        Ok(Elementwise {
            isa,
            level: Level::of(isa),
            activation,
        })
    }

    /// The tier bound.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Applies `act` to every element in place (for where it is not fused into a kernel's store)
    /// with the tier's vector activations, the same bits as a fused store.
    pub fn activation_in_place(&self, act: Activation, data: &mut [f32]) {
        // SAFETY: the kernel is the registry's for `self.isa`, checked available in `for_isa`.
        unsafe { (self.activation)(act, data) }
    }

    /// `dst += src`, element-wise. Errors when the lengths differ.
    pub fn add_in_place(&self, dst: &mut [f32], src: &[f32]) -> Result<()> {
        if dst.len() != src.len() {
            return Err(Error::shape("add operand", dst.len(), src.len()));
        }
        self.level.run(Add { dst, src });
        Ok(())
    }

    /// Multiplies channel `c` of image `b` by `scale[b * C + c]` in place (`t` is NHWC
    /// `[n, h, w, C]`), with the threads of `kernels` above 2^14 elements.
    pub fn scale_channels_in_place(
        &self,
        kernels: &Kernels,
        t: &mut Tensor,
        scale: &[f32],
    ) -> Result<()> {
        scale_channels_at(self.level, kernels, t, scale)
    }

    /// Per-image, per-channel sums of an NHWC tensor into `out` (`[n, c]`, overwritten), each
    /// channel added pixel after pixel.
    pub fn channel_sums(&self, t: &Tensor, out: &mut [f32]) -> Result<()> {
        channel_sums_at(self.level, t, out)
    }

    /// Global average pooling: NHWC `[n, h, w, c]` to `[n, c]` means (overwritten). Errors when
    /// `out` does not hold `n * c` floats.
    ///
    /// ```
    /// use mobile_cnn_kernels::{Kernels, Shape, Tensor, elementwise::Elementwise};
    /// let t = Tensor::from_slice(Shape::new(1, 2, 1, 2), &[1.0, 10.0, 3.0, 20.0]).unwrap();
    /// let mut out = [0.0; 2];
    /// Elementwise::new(&Kernels::new().unwrap()).unwrap().global_avg_pool(&t, &mut out).unwrap();
    /// assert_eq!(out, [2.0, 15.0]);
    /// ```
    pub fn global_avg_pool(&self, t: &Tensor, out: &mut [f32]) -> Result<()> {
        global_avg_pool_at(self.level, t, out)
    }

    /// `f` applied to every element of `data` under the bound SIMD level (for maps with no vector
    /// form of their own, such as the squeeze-excite gates).
    pub(crate) fn map_in_place(&self, data: &mut [f32], f: impl Fn(f32) -> f32) {
        self.level.run(MapInPlace(data, f));
    }
}

/// Elements of a tensor below which [`Elementwise::scale_channels_in_place`] runs on the calling thread: about
/// 2 us of work on one core (a parallel call of the kernels' pool costs about 1 us when its threads
/// are spinning). Above it the pixels are cut into one contiguous run per thread, the rows the same
/// thread's share of the pointwise step after it reads (see `pool.rs`).
const SCALE_PARALLEL_ELEMS: usize = 1 << 14;

fn scale_channels_at(level: Level, kernels: &Kernels, t: &mut Tensor, scale: &[f32]) -> Result<()> {
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
    kernels.for_each_pixel_run(data, c, s.h * s.w, parts, |img, _, run| {
        level.run(Scale {
            data: run,
            scale: &scale[img * c..(img + 1) * c],
        })
    });
    Ok(())
}

fn channel_sums_at(level: Level, t: &Tensor, out: &mut [f32]) -> Result<()> {
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
        level.run(Sums { data: img, out: o });
    }
    Ok(())
}

fn global_avg_pool_at(level: Level, t: &Tensor, out: &mut [f32]) -> Result<()> {
    channel_sums_at(level, t, out)?;
    let Shape { h, w, .. } = t.shape();
    let inv = 1.0 / (h * w) as f32;
    for v in out.iter_mut() {
        *v *= inv;
    }
    Ok(())
}
