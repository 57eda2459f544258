//! aarch64 kernels: NEON.

pub(crate) mod neon;

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
}
