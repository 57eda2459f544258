//! aarch64 kernels: NEON (f32), and NEON with FEAT_FP16 (f16 arithmetic) or FEAT_BF16 (bf16
//! multiplies, f32 accumulation) for the pointwise GEMM.

pub(crate) mod half;
#[cfg(test)]
mod half_model;
#[cfg(test)]
mod half_tests;
pub(crate) mod neon;
pub(crate) mod pointwise_bf16;
pub(crate) mod pointwise_f16;

#[cfg(test)]
mod tests {
    use super::{half_model, half_tests};
    use crate::Isa;
    use crate::registry::{self, Op};

    /// NEON is part of the aarch64 baseline: detection must report it (also under qemu-user), or the
    /// NEON kernels would silently go untested and unused.
    #[test]
    fn neon_is_detected_and_dispatched() {
        assert!(std::arch::is_aarch64_feature_detected!("neon"));
        assert!(Isa::Neon.is_available());
        assert_eq!(Isa::best(), Isa::Neon);
        let k = registry::find(Op::DwConv { k: 3 }, Isa::Neon).unwrap();
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

    /// Both half-precision pointwise kernels are in the registry under (pointwise, dtype, neon),
    /// available exactly when the CPU reports their feature. Where it does, the safe API (packing
    /// by the registry entry, split over 1 to 3 threads) gives the model's bits; where it does not,
    /// asking for the precision is an error naming the precision and the feature, and packed
    /// weights refuse to run.
    #[test]
    fn half_precision_kernels_are_registered_and_refused_without_their_feature() {
        use crate::registry::KernelKey;
        use crate::{Activation, Kernels, PackedPointwise, PointwiseGeom, Precision};
        let cases = [
            (
                Precision::F16,
                "pointwise_f16_8x16_neonfp16",
                "fp16",
                std::arch::is_aarch64_feature_detected!("fp16"),
            ),
            (
                Precision::Bf16,
                "pointwise_bf16_8x8_neonbf16",
                "bf16",
                std::arch::is_aarch64_feature_detected!("bf16"),
            ),
        ];
        let (p, k, n) = (37, 29, 21);
        let x = half_tests::rand_vec(1, p * k, 2.0);
        let w = half_tests::rand_vec(2, n * k, 1.0);
        let b = half_tests::rand_vec(3, n, 1.0);
        let r = half_tests::rand_vec(4, p * n, 2.0);
        for (dtype, name, feature, has) in cases {
            let key = KernelKey {
                op: Op::Pointwise,
                dtype,
                isa: Isa::Neon,
            };
            let entry = registry::find_key(key).unwrap();
            assert_eq!(entry.name, name);
            assert_eq!(entry.is_available(), has, "{name}");
            assert_eq!(dtype.is_available_on(Isa::Neon), has, "{name}");
            let packed = PackedPointwise::pack_for(entry, k, n, &w, Some(&b)).unwrap();
            let neon = Kernels::with_isa(Isa::Neon).unwrap();
            if !has {
                let e = neon.clone().with_precision(dtype).unwrap_err().to_string();
                assert!(e.contains(dtype.name()) && e.contains(feature), "{e}");
                let e = PackedPointwise::pack_precision(Isa::Neon, dtype, k, n, &w, Some(&b))
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(dtype.name()) && e.contains(feature), "{e}");
                let mut out = vec![0.0; p * n];
                let e = packed
                    .run_slices(&neon, p, &x, &mut out, Activation::Relu, Some(&r))
                    .unwrap_err();
                assert!(e.to_string().contains(feature), "{e}");
                eprintln!("{name}: refused as expected ({e})");
                continue;
            }
            let g = PointwiseGeom {
                p,
                k,
                n,
                act: Activation::HardSwish,
            };
            let mut want = vec![0.0; p * n];
            half_model::pointwise(dtype, &g, &x, &w, Some(&b), Some(&r), &mut want);
            for threads in 1..=3 {
                let ks = neon
                    .clone()
                    .with_precision(dtype)
                    .unwrap()
                    .with_threads(threads)
                    .unwrap();
                let mut out = vec![f32::NAN; p * n];
                packed
                    .run_slices(&ks, p, &x, &mut out, g.act, Some(&r))
                    .unwrap();
                for (i, (a, e)) in out.iter().zip(&want).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        e.to_bits(),
                        "{name}, {threads} threads: out[{i}]"
                    );
                }
            }
        }
    }
}
