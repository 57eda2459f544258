//! The portable SIMD tier ([`crate::Isa::Portable`]): the kernels written once over `wide`'s
//! `f32x4`, which compiles to the SIMD every target has in its baseline (SSE2 on x86-64, NEON on
//! aarch64, simd128 on wasm32 built with `+simd128`) and to scalar lanes elsewhere. It is what a
//! CPU without a hand tier runs (an x86-64 without AVX2, a wasm runtime, RISC-V, ...), and it is
//! always available, so the tests run it on every machine.
//!
//! Arithmetic: `f32x4::mul_add` is one fused multiply-add where the target has FMA in its baseline
//! (aarch64; x86-64 built with `-C target-cpu` that has FMA) and a multiply then an add elsewhere
//! (x86-64's SSE2 baseline, wasm32). The portable tier therefore matches the scalar tier bit for
//! bit only where it fuses; elsewhere each multiply-add rounds twice, within the tolerance the
//! conformance tests allow every f32 kernel (two roundings per term). Results never depend on the
//! thread count or the band split, as on every tier.
//!
//! Activations: ReLU, ReLU6, hard-swish and GELU are vector code with the scalar forms' operations
//! in the scalar order ([`act`]), so they equal the scalar tier's bit for bit where `mul_add` fuses;
//! SiLU and sigmoid apply the scalar form lane by lane. (The scalar forms' `mul_add` is a software
//! `fmaf` call on a target without FMA: applied lane by lane, GELU took about 70 of
//! RepViT-M1.0's 160 ms on this tier on Zen 3.)

pub(crate) mod dwconv;
pub(crate) mod pointwise;

use wide::f32x4;

use crate::activation::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, Activation, GELU_POLY, GELU_SCALE,
    GELU_SEGMENTS, act_of_code, with_act,
};

/// The activation of code `ACT` (`crate::activation::ACT_*`) on each lane (see the module
/// documentation for which are vector code).
#[inline(always)]
pub(crate) fn act<const ACT: u8>(v: f32x4) -> f32x4 {
    match ACT {
        ACT_IDENTITY => v,
        ACT_RELU => relu(v),
        ACT_RELU6 => relu6(v),
        ACT_HARDSWISH => v * relu6(v + f32x4::splat(3.0)) * f32x4::splat(1.0 / 6.0),
        ACT_GELU => gelu(v),
        _ => {
            let act = const { act_of_code(ACT) };
            f32x4::from(v.to_array().map(|x| act.apply(x)))
        }
    }
}

/// [`crate::elementwise::ActivationFn`] of the portable tier: [`act`] on runs of 4, the scalar form
/// on the last `len % 4` elements.
///
/// # Safety
/// None (the portable tier needs no CPU feature; `unsafe` only to share the function-pointer type).
pub(crate) unsafe fn activation_c4_portable(activation: Activation, data: &mut [f32]) {
    fn run<const ACT: u8>(data: &mut [f32]) {
        let mut chunks = data.chunks_exact_mut(4);
        for c in &mut chunks {
            let x: [f32; 4] = (&*c).try_into().expect("runs of 4");
            c.copy_from_slice(&act::<ACT>(f32x4::from(x)).to_array());
        }
        for v in chunks.into_remainder() {
            *v = act_of_code(ACT).apply(*v);
        }
    }
    with_act!(activation, |A| run::<A>(data))
}

/// `x > 0 ? x : 0` (NaN gives 0, as the scalar form).
#[inline(always)]
fn relu(v: f32x4) -> f32x4 {
    v.simd_gt(f32x4::ZERO).select(v, f32x4::ZERO)
}

/// `min(relu(x), 6)`.
#[inline(always)]
fn relu6(v: f32x4) -> f32x4 {
    relu(v).min(f32x4::splat(6.0))
}

/// GELU by the shared piecewise scheme (`crate::activation::gelu`): segment `round(f)` of
/// `f = min(|x| * GELU_SCALE, 7)`, its polynomial in `f - round(f)` by Horner's rule, then
/// `|x|/2 * p + x/2`. The coefficients are gathered per lane from the table.
#[inline(always)]
fn gelu(x: f32x4) -> f32x4 {
    let u = x.abs();
    // f32x4::min returns the other operand for a NaN lane, as f32::min: NaN maps to segment 7.
    let f = (u * f32x4::splat(GELU_SCALE)).min(f32x4::splat((GELU_SEGMENTS - 1) as f32));
    // Round to nearest, ties to even, for 0 <= f < 2^23: adding and subtracting 2^23 leaves the
    // integer part under the default rounding mode (the scalar form's `round_ties_even`).
    let magic = f32x4::splat(8_388_608.0);
    let i = (f + magic) - magic;
    let r = f - i;
    // Integral in 0..=7 (see above), so the casts are exact and in range.
    let idx = i.to_array().map(|v| v as usize);
    let row = |k: usize| f32x4::from(idx.map(|i| GELU_POLY[k][i]));
    let mut p = row(6);
    for k in (0..6).rev() {
        p = p.mul_add(r, row(k));
    }
    let half = f32x4::splat(0.5);
    (half * u).mul_add(p, half * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared activation sweep ([`crate::activation::tier_test`]): bit for bit against the
    /// scalar forms, GELU within rounding where `mul_add` does not fuse on this target.
    #[test]
    fn activations_match_the_scalar_forms() {
        let fused = cfg!(any(target_arch = "aarch64", target_feature = "fma"));
        crate::activation::tier_test::check_tier_with(
            4,
            crate::activation::gelu,
            |act, xs| {
                let mut v = xs.to_vec();
                // SAFETY: the portable tier needs no CPU feature.
                unsafe { activation_c4_portable(act, &mut v) };
                v
            },
            fused,
        );
    }
}
