//! aarch64 kernels: NEON (f32), and NEON with FEAT_FP16 (f16 arithmetic) or FEAT_BF16 (bf16
//! multiplies, f32 accumulation) for the pointwise GEMM.

pub(crate) mod half;
pub(crate) mod half_model;
#[cfg(test)]
mod half_tests;
pub(crate) mod neon;
pub(crate) mod pointwise_bf16;
pub(crate) mod pointwise_f16;

#[cfg(test)]
mod tests {
    use crate::Isa;
    use crate::registry::{self, Op};

    /// NEON is part of the aarch64 baseline: detection must report it (also under qemu-user), or the
    /// NEON kernels would silently go untested and unused.
    #[test]
    fn neon_is_detected_and_dispatched() {
        assert!(std::arch::is_aarch64_feature_detected!("neon"));
        assert!(Isa::Neon.is_available());
        assert_eq!(Isa::best(), Isa::Neon);
        let k = registry::find(Op::DwConv3x3, Isa::Neon).unwrap();
        assert!(
            k.name.starts_with("dwconv3x3") && k.name.ends_with("neon"),
            "{}",
            k.name
        );
        // With KERNELS_ISA unset (or naming neon), the process default is NEON.
        match std::env::var(crate::isa::ISA_ENV) {
            Ok(v) if !v.trim().is_empty() => {
                assert_eq!(Isa::selected().unwrap(), Isa::from_name(&v).unwrap())
            }
            _ => assert_eq!(Isa::selected().unwrap(), Isa::Neon),
        }
        // Which emulated core ran this (QEMU_CPU=cortex-a53 has neither feature, `max` has both).
        eprintln!(
            "aarch64: neon detected, selected ISA = {} (sve: {}, dotprod: {})",
            Isa::selected().unwrap(),
            std::arch::is_aarch64_feature_detected!("sve"),
            std::arch::is_aarch64_feature_detected!("dotprod"),
        );
    }

    /// FEAT_FP16 and FEAT_BF16 are detected at run time, never assumed: under qemu-user the
    /// emulated core (`QEMU_CPU`, which the test process inherits) decides what must be reported.
    /// cortex-a53 (Armv8.0) has neither, cortex-a76 (Armv8.2) has FP16 but not BF16, `max` both.
    #[test]
    fn half_precision_features_follow_the_emulated_core() {
        let fp16 = std::arch::is_aarch64_feature_detected!("fp16");
        let bf16 = std::arch::is_aarch64_feature_detected!("bf16");
        eprintln!(
            "aarch64: QEMU_CPU={:?}, fp16 detected: {fp16}, bf16 detected: {bf16}",
            std::env::var("QEMU_CPU").ok()
        );
        match std::env::var("QEMU_CPU").as_deref() {
            Ok("cortex-a53") => assert!(!fp16 && !bf16),
            Ok("cortex-a76") => assert!(fp16 && !bf16),
            Ok("max") => assert!(fp16 && bf16),
            _ => eprintln!("aarch64: not under a known qemu core, nothing to compare with"),
        }
    }
}
