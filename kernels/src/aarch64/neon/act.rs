//! Activations on `float32x4_t`, by exactly the scheme (formulas, constants, operation order) of the
//! scalar functions in [`crate::activation`]: results equal the scalar ones bit for bit (NaN aside,
//! which stays NaN where the scalar form gives NaN), as the tests below check.
//!
//! The activation is a compile-time choice in the hot loops: kernels take `const ACT: u8` (one of
//! the `ACT_*` codes below, the same pattern as the x86-64 tiers) and turn the runtime
//! [`Activation`] into it once, at their entry, with [`with_act!`](crate::aarch64::neon::act::with_act).
//!
//! Every function here is `#[inline(always)]` and meant to be inlined into a
//! `#[target_feature(enable = "neon")]` function.

use core::arch::aarch64::*;

use crate::activation::{
    Activation, EXP_MAX, EXP_MIN, EXP_TAYLOR, GELU_POLY, GELU_SCALE, GELU_SEGMENTS, LN2_HI, LN2_LO,
    LOG2_E, SIGMOID_CUTOFF,
};

// The activation codes and `with_act!` are shared by every tier (`crate::activation`).
#[allow(unused_imports)] // each tier uses its own subset of the codes
pub(crate) use crate::activation::{
    ACT_GELU, ACT_HARDSWISH, ACT_IDENTITY, ACT_RELU, ACT_RELU6, ACT_SIGMOID, ACT_SILU, act_of_code,
    with_act,
};

/// `x`.
///
/// # Safety
/// None (kept `unsafe` for uniformity with the other activations).
#[inline(always)]
pub(crate) unsafe fn identity(x: float32x4_t) -> float32x4_t {
    x
}

/// `max(x, 0)`; NaN gives 0 and -0 gives +0, as the scalar `relu` (`FMAXNM` returns the number when
/// one operand is a quiet NaN, and orders -0 below +0).
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn relu(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract); register-only intrinsics.
    unsafe { vmaxnmq_f32(x, vdupq_n_f32(0.0)) }
}

/// `min(max(x, 0), 6)`, as the scalar `relu6` (`f32::min` also ignores a NaN operand).
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn relu6(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract, which `relu` shares).
    unsafe { vminnmq_f32(relu(x), vdupq_n_f32(6.0)) }
}

/// `x * relu6(x + 3) * (1/6)`, evaluated left to right as the scalar `hardswish`.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn hardswish(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract, which `relu6` shares).
    unsafe {
        let r = relu6(vaddq_f32(x, vdupq_n_f32(3.0)));
        vmulq_f32(vmulq_f32(x, r), vdupq_n_f32(1.0 / 6.0))
    }
}

/// Row `k` of the GELU table, lane `j` taking segment `idx[j]` (which must be in `0..8`).
///
/// # Safety
/// NEON must be available.
#[inline(always)]
unsafe fn gelu_row(idx: uint32x4_t, k: usize) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract); `GELU_POLY[k]` is 8 floats = 32 bytes,
    // exactly what the two-register load reads.
    unsafe {
        let table = vld1q_u8_x2(GELU_POLY[k].as_ptr().cast::<u8>());
        // Byte b of lane j reads byte 4 * idx[j] + b of the row (little-endian floats; 4 * 7 + 3 =
        // 31 stays inside the 32-byte table and no byte carries into the next).
        let bytes = vmlaq_n_u32(vdupq_n_u32(0x0302_0100), idx, 0x0404_0404);
        vreinterpretq_f32_u8(vqtbl2q_u8(table, vreinterpretq_u8_u32(bytes)))
    }
}

/// Exact-form GELU by the shared table scheme of [`crate::activation::gelu`]; NaN stays NaN.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn gelu(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract, which `gelu_row` shares); every index
    // passed to `gelu_row` is in 0..8.
    unsafe {
        let u = vabsq_f32(x);
        // FMINNM: a NaN product gives the last segment, like the scalar `f32::min`.
        let f = vminnmq_f32(
            vmulq_f32(u, vdupq_n_f32(GELU_SCALE)),
            vdupq_n_f32((GELU_SEGMENTS - 1) as f32),
        );
        // Round to nearest, ties to even (FRINTN), as `round_ties_even`.
        let i = vrndnq_f32(f);
        let r = vsubq_f32(f, i);
        // Integral in [0, 7]: the conversion is exact.
        let idx = vcvtq_u32_f32(i);
        let mut p = gelu_row(idx, 6);
        for k in (0..6).rev() {
            // vfmaq_f32(a, b, c) = a + b * c with one rounding: `p.mul_add(r, row)`.
            p = vfmaq_f32(gelu_row(idx, k), p, r);
        }
        let half = vdupq_n_f32(0.5);
        vfmaq_f32(vmulq_f32(half, x), vmulq_f32(half, u), p)
    }
}

/// `exp(x)` by the shared scheme of [`crate::activation::exp`] (same operations, same order); NaN
/// stays NaN.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn exp(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract); register-only intrinsics.
    unsafe {
        // FMAX/FMIN propagate NaN, as `f32::clamp`.
        let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_MIN)), vdupq_n_f32(EXP_MAX));
        // Round to nearest, ties to even (FRINTN), as `round_ties_even`.
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2_E)));
        // vfmaq_f32(a, b, c) = a + b * c with one rounding: `n.mul_add(-LN2_HI, x)`.
        let r = vfmaq_f32(x, n, vdupq_n_f32(-LN2_HI));
        let r = vfmaq_f32(r, n, vdupq_n_f32(-LN2_LO));
        let mut p = vdupq_n_f32(EXP_TAYLOR[0]);
        for &c in &EXP_TAYLOR[1..] {
            p = vfmaq_f32(vdupq_n_f32(c), p, r);
        }
        // n is integral in [-126, 127] (NaN aside, where p is NaN already): 2^n exactly.
        let bits = vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127));
        vmulq_f32(p, vreinterpretq_f32_s32(vshlq_n_s32::<23>(bits)))
    }
}

/// Sigmoid by the shared scheme of [`crate::activation::sigmoid`]; NaN stays NaN.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn sigmoid(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract, which `exp` shares).
    unsafe {
        let u = vabsq_f32(x);
        let big = vcgtq_f32(u, vdupq_n_f32(SIGMOID_CUTOFF));
        let zero = vdupq_n_f32(0.0);
        let e = vbslq_f32(big, zero, exp(vnegq_f32(u)));
        let one = vdupq_n_f32(1.0);
        let d = vaddq_f32(one, e);
        // One division of the selected numerator: the same bits as dividing both and selecting.
        vdivq_f32(vbslq_f32(vcltq_f32(x, zero), e, one), d)
    }
}

/// SiLU, `x * sigmoid(x)`, as [`crate::activation::silu`].
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn silu(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract, which `sigmoid` shares).
    unsafe { vmulq_f32(x, sigmoid(x)) }
}

/// The activation of code `ACT` (an `ACT_*` constant of this module); resolved at compile time.
///
/// # Safety
/// NEON must be available.
#[inline(always)]
pub(crate) unsafe fn apply<const ACT: u8>(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is available (this function's contract covers every callee's).
    unsafe {
        match ACT {
            ACT_IDENTITY => identity(x),
            ACT_RELU => relu(x),
            ACT_RELU6 => relu6(x),
            ACT_HARDSWISH => hardswish(x),
            ACT_GELU => gelu(x),
            ACT_SILU => silu(x),
            ACT_SIGMOID => sigmoid(x),
            _ => unreachable!("unknown activation code {ACT}"),
        }
    }
}

/// [`crate::elementwise::ActivationFn`] with NEON (the element-wise form of the fused epilogues).
///
/// # Safety
/// NEON must be available (asserted again here: on a NEON-less aarch64 this panics instead).
pub(crate) unsafe fn activation_c4_neon(act: Activation, data: &mut [f32]) {
    /// # Safety
    /// NEON must be available.
    #[target_feature(enable = "neon")]
    unsafe fn run<const ACT: u8>(data: &mut [f32]) {
        let mut chunks = data.chunks_exact_mut(4);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly 4 floats; NEON is available (contract).
            unsafe { vst1q_f32(c.as_mut_ptr(), apply::<ACT>(vld1q_f32(c.as_ptr()))) };
        }
        for v in chunks.into_remainder() {
            *v = act_of_code(ACT).apply(*v);
        }
    }
    assert!(
        crate::Isa::Neon.is_available(),
        "NEON kernels called without NEON"
    );
    // SAFETY: NEON availability was asserted just above.
    unsafe { with_act!(act, |A| run::<A>(data)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{self, GELU_ABS_TOLERANCE};

    /// Applies `ACT` to four lanes through NEON registers.
    fn apply4<const ACT: u8>(x: [f32; 4]) -> [f32; 4] {
        let mut out = [0.0f32; 4];
        // SAFETY: NEON is part of the aarch64 baseline (and `Isa::Neon.is_available()` is asserted
        // by the tests of `crate::aarch64`); both pointers address 4 floats of local arrays.
        unsafe { vst1q_f32(out.as_mut_ptr(), apply::<ACT>(vld1q_f32(x.as_ptr()))) };
        out
    }

    fn apply_act(act: Activation, x: [f32; 4]) -> [f32; 4] {
        with_act!(act, |A| apply4::<A>(x))
    }

    fn gelu_exact(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    /// Same bits, or both NaN.
    fn same(a: f32, b: f32) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// A dense grid of [-20, 20] plus special values.
    fn samples() -> Vec<f32> {
        let mut v: Vec<f32> = (-20 * 4096..=20 * 4096)
            .map(|i| i as f32 / 4096.0)
            .collect();
        v.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            3.25,
            -3.25,
            6.0,
            6.5,
            -3.0,
            6.5 / crate::activation::GELU_SCALE,
            -6.5 / crate::activation::GELU_SCALE,
            87.0,
            -87.0,
            1e4,
            -1e4,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        v
    }

    #[test]
    fn codes_round_trip() {
        for act in Activation::ALL {
            let code = with_act!(act, |A| A);
            assert_eq!(act_of_code(code), act);
        }
    }

    #[test]
    fn every_activation_equals_the_scalar_bit_for_bit() {
        for act in Activation::ALL {
            for chunk in samples().chunks(4) {
                let mut x = [0.0f32; 4];
                x[..chunk.len()].copy_from_slice(chunk);
                let y = apply_act(act, x);
                for (&xi, &yi) in x.iter().zip(&y) {
                    let s = act.apply(xi);
                    assert!(
                        same(yi, s),
                        "{}({xi:e}): neon {yi:e}, scalar {s:e}",
                        act.name()
                    );
                }
            }
        }
    }

    #[test]
    fn vector_gelu_within_tolerance_of_exact_erf_form() {
        let mut worst = (0.0f64, 0.0f32);
        let xs: Vec<f32> = (-20 * 16384..=20 * 16384)
            .map(|i| i as f32 / 16384.0)
            .collect();
        for chunk in xs.chunks_exact(4) {
            let x: [f32; 4] = chunk.try_into().unwrap();
            let y = apply4::<ACT_GELU>(x);
            for (&xi, &yi) in x.iter().zip(&y) {
                let e = (yi as f64 - gelu_exact(xi as f64)).abs();
                if e > worst.0 {
                    worst = (e, xi);
                }
            }
        }
        assert!(
            worst.0 <= 1e-6 && worst.0 <= GELU_ABS_TOLERANCE as f64,
            "worst |gelu - exact| = {:e} at x = {}",
            worst.0,
            worst.1
        );
        let y = apply4::<ACT_GELU>([f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
        assert_eq!(y[2], f32::INFINITY);
        // -inf * Phi(-inf) = -inf * 0 is NaN in both the scalar and the vector form.
        assert!(same(y[3], activation::gelu(f32::NEG_INFINITY)));
    }
}
