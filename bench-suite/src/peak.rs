//! The machine's peak f32 FMA throughput per instruction set, measured by a loop of independent
//! fused multiply-adds (enough chains to cover FMA latency on every current core), so kernel speeds
//! can be quoted as a fraction of what the same core reaches in the same run.

use mobile_cnn_kernels::{Isa, Precision};

/// Independent `vdpbf16ps` chains of [`bf16_dot_loop`] (as for f32 FMA: 32 registers).
pub const BF16_CHAINS: usize = 16;

/// Floating-point operations done by [`bf16_dot_loop`] for `iters`: per chain and iteration one
/// `vdpbf16ps zmm`, 16 lanes x 2 multiply-adds x 2 FLOP.
pub fn bf16_flops(iters: u64) -> u64 {
    iters * (BF16_CHAINS * 16 * 2 * 2) as u64
}

/// The bf16 dot-product peak probe: `iters` iterations of [`BF16_CHAINS`] independent
/// `vdpbf16ps zmm` (the instruction of the bf16 GEMM); returns a value depending on all of them.
/// `None` unless this CPU runs bf16 on AVX-512 (AVX512_BF16).
pub fn bf16_dot_loop(iters: u64) -> Option<f32> {
    if !Precision::Bf16.is_available_on(Isa::Avx512) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX512_BF16 (with AVX-512F) was checked available above.
        Some(unsafe { x86::dpbf16_avx512(iters) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = iters;
        None
    }
}

/// Independent accumulator chains per loop iteration: 12 on AVX2 (16 vector registers, two hold the
/// operands), 16 where there are 32 registers. Either covers 4-cycle FMA latency at 2 FMAs a cycle.
pub const fn chains(isa: Isa) -> usize {
    match isa {
        Isa::Avx2 => 12,
        _ => 16,
    }
}

/// Floating-point operations (a multiply-add counts 2) done by [`fma_loop`] for `iters` on `isa`.
pub fn flops(isa: Isa, iters: u64) -> u64 {
    iters * (chains(isa) * isa.lanes() * 2) as u64
}

/// Runs `iters` iterations of `CHAINS` independent vector FMAs (FMA is not associative, so the
/// compiler cannot shorten the chains; `iters` should come through `black_box`) on `isa` and returns a value that
/// depends on all of them (so nothing is optimised away). `None` when the tier has no FMA loop here
/// (the scalar and portable tiers, whose multiply-adds are not one FMA instruction on every target,
/// or an ISA this CPU or target lacks).
pub fn fma_loop(isa: Isa, iters: u64) -> Option<f32> {
    if !isa.is_available() {
        return None;
    }
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the tier was checked available above, which includes AVX2 and FMA.
        Isa::Avx2 => Some(unsafe { x86::fma_avx2(iters) }),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the tier was checked available above, which includes AVX-512F.
        Isa::Avx512 => Some(unsafe { x86::fma_avx512(iters) }),
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the tier was checked available above.
        Isa::Neon => Some(unsafe { arm::fma_neon(iters) }),
        _ => None,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::chains;
    use mobile_cnn_kernels::Isa;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn fma_avx2(iters: u64) -> f32 {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); chains(Isa::Avx2)];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        let mut out = [0.0f32; 8];
        // SAFETY: `out` holds 8 floats, the width of one unaligned 256-bit store.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fma_avx512(iters: u64) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); chains(Isa::Avx512)];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX512_BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn dpbf16_avx512(iters: u64) -> f32 {
        use super::BF16_CHAINS;
        // Pairs (2^-8, 1 - 2^-8) times (1, 1): each step adds exactly 1.0 in every lane, never
        // overflowing for any sane `iters` (which comes through `black_box`).
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.996_093_75), _mm512_set1_ps(0.003_906_25));
        let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0), _mm512_set1_ps(1.0));
        let mut acc = [_mm512_setzero_ps(); BF16_CHAINS];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_dpbf16_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        _mm512_reduce_add_ps(s)
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::chains;
    use mobile_cnn_kernels::Isa;
    use std::arch::aarch64::*;

    /// # Safety
    /// The CPU must support NEON.
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn fma_neon(iters: u64) -> f32 {
        let a = vdupq_n_f32(0.999_999);
        let b = vdupq_n_f32(1e-7);
        let mut acc = [vdupq_n_f32(1.0); chains(Isa::Neon)];
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = vfmaq_f32(b, *v, a);
            }
        }
        let mut s = vdupq_n_f32(0.0);
        for v in acc {
            s = vaddq_f32(s, v);
        }
        vaddvq_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_run_on_every_available_simd_tier() {
        for isa in Isa::available() {
            let r = fma_loop(isa, 1000);
            if matches!(isa, Isa::Scalar | Isa::Portable) {
                assert!(r.is_none(), "{isa} has no FMA peak loop");
            } else {
                // chains x lanes, each converging towards 0.1 from 1.0: finite and positive.
                let v = r.unwrap();
                assert!(v.is_finite() && v > 0.0, "{isa}: {v}");
            }
        }
        assert_eq!(flops(Isa::Avx512, 10), 10 * 16 * 16 * 2);
        assert_eq!(flops(Isa::Avx2, 10), 10 * 12 * 8 * 2);
    }

    #[test]
    fn bf16_probe_runs_exactly_where_avx512_has_bf16() {
        let r = bf16_dot_loop(1000);
        assert_eq!(r.is_some(), Precision::Bf16.is_available_on(Isa::Avx512));
        if let Some(v) = r {
            // Every lane of every chain adds exactly 1.0 per iteration.
            assert_eq!(v, (1000 * BF16_CHAINS * 16) as f32);
        }
        assert_eq!(bf16_flops(10), 10 * 16 * 64);
    }
}
