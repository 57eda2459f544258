//! Conversions between f32 and the half-precision formats, with the rounding the kernels use.
//!
//! bf16 follows Intel's definition of `vcvtne2ps2bf16` (Intel SDM, "VCVTNE2PS2BF16",
//! `convert_fp32_to_bfloat16`): round to nearest even, denormal inputs become a zero of the same
//! sign (DAZ), a NaN stays a quiet NaN. f16 is IEEE 754 binary16 with round to nearest even
//! (the `half` crate's conversion).

use crate::Precision;

/// f32 -> bf16 bit pattern: round to nearest even; denormals to signed zero; NaN stays (quiet) NaN.
#[inline]
pub fn bf16_from_f32(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        // Quiet the NaN: keep sign and top payload bits, set the quiet bit.
        ((b >> 16) | 0x0040) as u16
    } else if x.is_subnormal() {
        ((b >> 16) & 0x8000) as u16
    } else {
        // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; a carry into the
        // exponent is the correct rounding up (to infinity past the largest finite bf16).
        let lsb = (b >> 16) & 1;
        (b.wrapping_add(0x7fff + lsb) >> 16) as u16
    }
}

/// bf16 bit pattern -> f32 (exact).
#[inline]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 -> f16 bit pattern, round to nearest even (IEEE 754 binary16).
#[inline]
pub fn f16_from_f32(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// f16 bit pattern -> f32 (exact).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// `x` as the bit pattern of `dtype` (`F32`: the low 16 bits are meaningless, do not use).
#[inline]
pub fn to_bits(dtype: Precision, x: f32) -> u16 {
    match dtype {
        Precision::Bf16 => bf16_from_f32(x),
        Precision::F16 => f16_from_f32(x),
        Precision::F32 => (x.to_bits() >> 16) as u16,
    }
}

/// `x` rounded to `dtype` and widened back to f32 (exact widening); `F32` returns `x`.
#[inline]
pub fn round_to(dtype: Precision, x: f32) -> f32 {
    match dtype {
        Precision::Bf16 => bf16_to_f32(bf16_from_f32(x)),
        Precision::F16 => f16_to_f32(f16_from_f32(x)),
        Precision::F32 => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(bf16_from_f32(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        assert_eq!(bf16_from_f32(1.0 + 3.0 / 256.0), 0x3f82);
        // Just above the halfway point rounds up.
        assert_eq!(bf16_from_f32(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(bf16_from_f32(-2.0), 0xc000);
        assert_eq!(bf16_to_f32(0x3f81), 1.0 + 1.0 / 128.0);
        // Overflow to infinity, infinities and NaN.
        assert_eq!(bf16_from_f32(f32::MAX), 0x7f80);
        assert_eq!(bf16_from_f32(f32::INFINITY), 0x7f80);
        assert_eq!(bf16_from_f32(f32::NEG_INFINITY), 0xff80);
        assert!(bf16_to_f32(bf16_from_f32(f32::NAN)).is_nan());
        assert!(bf16_to_f32(bf16_from_f32(f32::from_bits(0x7f80_0001))).is_nan());
        // Denormals are flushed to a zero of their sign (DAZ, as vcvtne2ps2bf16 does).
        assert_eq!(bf16_from_f32(f32::from_bits(0x0000_ffff)), 0x0000);
        assert_eq!(bf16_from_f32(-f32::from_bits(0x007f_ffff)), 0x8000);
        // The smallest normal stays.
        assert_eq!(bf16_from_f32(f32::MIN_POSITIVE), 0x0080);
    }

    #[test]
    fn bf16_rounding_error_is_at_most_half_an_ulp() {
        let mut x = 1.0e-30f32;
        while x < 1.0e30 {
            for v in [x, -x, x * 1.234_567, x * 1.999_9] {
                let r = round_to(Precision::Bf16, v);
                assert!(((r - v) / v).abs() <= 1.0 / 256.0, "{v} -> {r}");
            }
            x *= 1.37;
        }
    }

    #[test]
    fn f16_matches_ieee_binary16() {
        assert_eq!(f16_from_f32(1.0), 0x3c00);
        assert_eq!(f16_from_f32(65504.0), 0x7bff);
        assert_eq!(f16_from_f32(1.0e6), 0x7c00);
        assert_eq!(round_to(Precision::F16, 1.0 + 1.0 / 2048.0), 1.0);
        assert_eq!(round_to(Precision::F32, 0.1), 0.1);
    }
}
