//! Instruction-set tiers and their detection. This is the only module that asks the CPU what it
//! supports; everything else receives an [`Isa`] that was checked here.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Name of the environment variable that forces one tier for the whole process.
pub const ISA_ENV: &str = "KERNELS_ISA";

/// An instruction-set tier. Each kernel is written for exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no intrinsics. Always available.
    Scalar,
    /// x86-64 AVX2 with FMA3 (the x86-64-v3 level), 8 f32 lanes.
    Avx2,
    /// x86-64 AVX-512F (with AVX2 and FMA), 16 f32 lanes.
    Avx512,
    /// aarch64 Advanced SIMD, 4 f32 lanes.
    Neon,
}

impl Isa {
    /// Every tier, from the most portable to the widest.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// Lower-case name, as accepted by `KERNELS_ISA`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a tier name (case-insensitive); `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }

    /// f32 lanes of one vector register of this tier.
    pub const fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
            Isa::Neon => 4,
        }
    }

    /// Whether this CPU (and this build's target) can run kernels of this tier. Detected once.
    pub fn is_available(self) -> bool {
        detected()[self as usize]
    }

    /// The tiers this CPU can run, from the most portable to the widest.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The widest tier this CPU can run, ignoring `KERNELS_ISA`.
    pub fn best() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Scalar)
    }

    /// The tier the process uses by default: `KERNELS_ISA` when set (an error if it names an unknown
    /// tier or one this CPU lacks, never a silent fallback), else [`Isa::best`]. Read once and cached.
    pub fn selected() -> Result<Isa> {
        static SELECTED: OnceLock<Result<Isa>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(ISA_ENV) {
                Ok(v) if !v.trim().is_empty() => Isa::from_env_value(&v),
                _ => Ok(Isa::best()),
            })
            .clone()
    }

    /// Interprets a `KERNELS_ISA` value: the tier it names, if this CPU has it.
    pub fn from_env_value(value: &str) -> Result<Isa> {
        let isa = Isa::from_name(value).ok_or_else(|| Error::IsaUnknown {
            value: value.to_string(),
        })?;
        isa.check("KERNELS_ISA")
    }

    /// `Ok(self)` when available, else an error naming `source` as the one who asked.
    pub fn check(self, source: &'static str) -> Result<Isa> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(Error::IsaUnavailable {
                isa: self.name(),
                source,
            })
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = Error;
    fn from_str(s: &str) -> Result<Isa> {
        Isa::from_name(s).ok_or_else(|| Error::IsaUnknown {
            value: s.to_string(),
        })
    }
}

fn detected() -> &'static [bool; 4] {
    static DETECTED: OnceLock<[bool; 4]> = OnceLock::new();
    DETECTED.get_or_init(|| {
        let mut d = [false; 4];
        d[Isa::Scalar as usize] = true;
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            d[Isa::Avx2 as usize] = avx2;
            d[Isa::Avx512 as usize] = avx2 && std::arch::is_x86_feature_detected!("avx512f");
        }
        #[cfg(target_arch = "aarch64")]
        {
            d[Isa::Neon as usize] = std::arch::is_aarch64_feature_detected!("neon");
        }
        d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert!(Isa::from_name("sse2").is_none());
    }

    #[test]
    fn scalar_always_available_and_unknown_is_an_error() {
        assert!(Isa::Scalar.is_available());
        assert!(matches!(
            Isa::from_env_value("avx1024"),
            Err(Error::IsaUnknown { .. })
        ));
        for isa in Isa::ALL {
            match Isa::from_env_value(isa.name()) {
                Ok(i) => assert!(i.is_available()),
                Err(e) => {
                    assert!(!isa.is_available());
                    assert!(e.to_string().contains(isa.name()), "{e}");
                }
            }
        }
    }

    #[test]
    fn arch_specific_tiers_follow_target() {
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!Isa::Avx2.is_available() && !Isa::Avx512.is_available());
        #[cfg(not(target_arch = "aarch64"))]
        assert!(!Isa::Neon.is_available());
        #[cfg(target_arch = "aarch64")]
        assert!(Isa::Neon.is_available());
        // AVX-512 kernels also use AVX2/FMA instructions for tails, so the tier implies AVX2.
        assert!(!Isa::Avx512.is_available() || Isa::Avx2.is_available());
    }
}
