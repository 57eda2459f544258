//! Instruction-set tiers, precisions, and their detection. This is the only module that asks the
//! CPU what it supports; everything else receives an [`Isa`] and a [`Precision`] checked here.
//!
//! Precision is a second axis beside the tier, not more tiers (as XNNPACK names its micro-kernels
//! by datatype and ISA): a kernel is registered under `(op, precision, isa)` (see
//! [`crate::registry::KernelKey`]), and [`Precision::is_available_on`] says whether this CPU can run
//! a precision on a tier.

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Name of the environment variable that forces one tier for the whole process.
pub const ISA_ENV: &str = "KERNELS_ISA";

/// Name of the environment variable that picks the precision of the process default [`Kernels`]
/// (`f32`, `bf16`, `f16`; unset means `f32`).
///
/// [`Kernels`]: crate::Kernels
pub const PRECISION_ENV: &str = "KERNELS_PRECISION";

/// An instruction-set tier. Each kernel is written for exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no intrinsics. Always available.
    Scalar,
    /// Portable SIMD over `wide`'s `f32x4`: the target's baseline SIMD (SSE2 on x86-64, NEON on
    /// aarch64, simd128 on wasm32 with `+simd128`), scalar lanes elsewhere. Always available; the
    /// default where no hand tier is (see `crate::portable`).
    Portable,
    /// x86-64 AVX2 with FMA3 (the x86-64-v3 level), 8 f32 lanes.
    Avx2,
    /// x86-64 AVX-512F (with AVX2 and FMA), 16 f32 lanes.
    Avx512,
    /// aarch64 Advanced SIMD, 4 f32 lanes.
    Neon,
}

impl Isa {
    /// Every tier, from the most portable to the widest.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Portable,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Neon,
    ];

    /// Lower-case name, as accepted by `KERNELS_ISA`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Portable => "portable",
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
            Isa::Portable => 4,
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
                available: Isa::available()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
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

/// The arithmetic precision of a kernel's weights and multiplies.
///
/// What stays f32 whatever the precision: activations between layers (kernels read and write f32;
/// a half-precision kernel rounds its input rows itself), biases, accumulators (bf16 kernels),
/// activations functions and residual adds in the epilogue, and every op without a half-precision
/// kernel. Half-precision weights are stored as `u16` bit patterns (`bf16`: the top half of an f32,
/// `f16`: IEEE 754 binary16).
///
/// | precision | x86-64 | aarch64 |
/// |---|---|---|
/// | `f32` | every tier | every tier |
/// | `bf16` | `avx512` with AVX512_BF16 (`vdpbf16ps`) | `neon` with FEAT_BF16 (`bfdot`, `bfmmla`) |
/// | `f16` | none | `neon` with FEAT_FP16 (`fmla v.8h`) |
///
/// The `scalar` tier runs any precision in portable code that models its rounding (it needs no
/// CPU feature), so tests and accuracy runs work on every machine; the `portable` SIMD tier runs f32
/// only. Asking for a precision that the tier lacks on this CPU is an error
/// ([`Precision::check_on`]), never a silent fallback to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Precision {
    /// IEEE 754 binary32: the default.
    #[default]
    F32,
    /// bfloat16 (8 exponent bits, 8 significand bits), f32 accumulation.
    Bf16,
    /// IEEE 754 binary16 (5 exponent bits, 11 significand bits).
    F16,
}

impl Precision {
    /// Every precision.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// Lower-case name (`f32`, `bf16`, `f16`), as accepted by `KERNELS_PRECISION`.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// Parses a precision name (case-insensitive); `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Bytes of one weight in this precision.
    pub const fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::Bf16 | Precision::F16 => 2,
        }
    }

    /// The CPU feature a tier needs for this precision, as named by the detection macros (`None`
    /// when the tier needs nothing beyond itself, or cannot run the precision at all).
    pub const fn feature_on(self, isa: Isa) -> Option<&'static str> {
        match (self, isa) {
            (Precision::Bf16, Isa::Avx512) => Some("avx512bf16"),
            (Precision::Bf16, Isa::Neon) => Some("bf16"),
            (Precision::F16, Isa::Neon) => Some("fp16"),
            _ => None,
        }
    }

    /// Whether this CPU (and this build's target) can run kernels of this precision on `isa`:
    /// the tier is available and has the precision's arithmetic (table on [`Precision`]).
    pub fn is_available_on(self, isa: Isa) -> bool {
        isa.is_available()
            && match (self, isa) {
                (Precision::F32, _) | (_, Isa::Scalar) => true,
                (Precision::Bf16, Isa::Avx512) => detected_precisions().avx512bf16,
                (Precision::Bf16, Isa::Neon) => detected_precisions().neon_bf16,
                (Precision::F16, Isa::Neon) => detected_precisions().neon_fp16,
                _ => false,
            }
    }

    /// The precisions this CPU offers on `isa`.
    pub fn available_on(isa: Isa) -> Vec<Precision> {
        Precision::ALL
            .into_iter()
            .filter(|p| p.is_available_on(isa))
            .collect()
    }

    /// What this CPU offers, per available tier, e.g. `scalar: f32, bf16, f16; avx2: f32`.
    pub fn offered() -> String {
        Isa::available()
            .into_iter()
            .map(|i| {
                let ps: Vec<_> = Precision::available_on(i)
                    .iter()
                    .map(|p| p.name())
                    .collect();
                format!("{i}: {}", ps.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Ok(self)` when this CPU runs the precision on `isa`, else an error naming `source` as the
    /// one who asked, the feature it needs and what this CPU offers.
    pub fn check_on(self, isa: Isa, source: &'static str) -> Result<Precision> {
        if self.is_available_on(isa) {
            Ok(self)
        } else {
            let (precision, isa_name) = (self.name(), isa.name());
            Err(Error::PrecisionUnavailable {
                precision,
                isa: isa_name,
                source,
                need: self.feature_on(isa).map_or_else(
                    || format!("`{isa_name}` has no {precision} kernels"),
                    |feat| format!("{precision} on `{isa_name}` needs the CPU feature `{feat}`"),
                ),
                offered: Precision::offered(),
            })
        }
    }

    /// The precision of the process default: `KERNELS_PRECISION` when set (an error if it names an
    /// unknown precision), else f32. Whether the tier has it is checked by [`crate::Kernels::new`].
    pub fn selected() -> Result<Precision> {
        static SELECTED: OnceLock<Result<Precision>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(PRECISION_ENV) {
                Ok(v) if !v.trim().is_empty() => Precision::from_env_value(&v),
                _ => Ok(Precision::F32),
            })
            .clone()
    }

    /// Interprets a `KERNELS_PRECISION` value.
    pub fn from_env_value(value: &str) -> Result<Precision> {
        Precision::from_name(value).ok_or_else(|| Error::PrecisionUnknown {
            value: value.to_string(),
        })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Precision> {
        Precision::from_env_value(s)
    }
}

/// Half-precision arithmetic features, detected once.
#[derive(Debug, Clone, Copy, Default)]
struct PrecisionFeatures {
    avx512bf16: bool,
    neon_bf16: bool,
    neon_fp16: bool,
}

fn detected_precisions() -> PrecisionFeatures {
    static DETECTED: OnceLock<PrecisionFeatures> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[allow(unused_mut)]
        let mut f = PrecisionFeatures::default();
        #[cfg(target_arch = "x86_64")]
        {
            f.avx512bf16 = Isa::Avx512.is_available()
                && std::arch::is_x86_feature_detected!("avx512bf16")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon_bf16 = std::arch::is_aarch64_feature_detected!("bf16");
            f.neon_fp16 = std::arch::is_aarch64_feature_detected!("fp16");
        }
        f
    })
}

fn detected() -> &'static [bool; 5] {
    static DETECTED: OnceLock<[bool; 5]> = OnceLock::new();
    DETECTED.get_or_init(|| {
        let mut d = [false; 5];
        d[Isa::Scalar as usize] = true;
        d[Isa::Portable as usize] = true;
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
        // The portable SIMD tier is always there too, so the default is never the scalar one.
        assert!(Isa::Portable.is_available());
        assert_ne!(Isa::best(), Isa::Scalar);
        assert_eq!(Isa::from_name("Portable"), Some(Isa::Portable));
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

    #[test]
    fn precision_names_round_trip_and_unknown_is_an_error() {
        for p in Precision::ALL {
            assert_eq!(Precision::from_name(p.name()), Some(p));
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert_eq!(Precision::from_name(" BF16 "), Some(Precision::Bf16));
        let e = Precision::from_env_value("fp8").unwrap_err();
        assert!(
            e.to_string().contains("fp8") && e.to_string().contains("bf16"),
            "{e}"
        );
    }

    #[test]
    fn precision_availability_follows_the_tier_and_its_features() {
        for isa in Isa::ALL {
            // f32 wherever the tier runs; nothing where it does not.
            assert_eq!(Precision::F32.is_available_on(isa), isa.is_available());
            for p in Precision::ALL {
                assert!(!p.is_available_on(isa) || isa.is_available());
            }
        }
        for p in Precision::ALL {
            assert!(p.is_available_on(Isa::Scalar), "{p} on scalar");
        }
        // No x86 tier has f16 arithmetic, and AVX2 has no bf16.
        assert!(!Precision::F16.is_available_on(Isa::Avx2));
        assert!(!Precision::F16.is_available_on(Isa::Avx512));
        assert!(!Precision::Bf16.is_available_on(Isa::Avx2));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            Precision::Bf16.is_available_on(Isa::Avx512),
            Isa::Avx512.is_available() && std::arch::is_x86_feature_detected!("avx512bf16")
        );
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(
                Precision::Bf16.is_available_on(Isa::Neon),
                std::arch::is_aarch64_feature_detected!("bf16")
            );
            assert_eq!(
                Precision::F16.is_available_on(Isa::Neon),
                std::arch::is_aarch64_feature_detected!("fp16")
            );
        }
    }

    #[test]
    fn missing_precision_is_an_error_naming_what_the_cpu_offers() {
        let e = Precision::F16.check_on(Isa::Avx2, "KERNELS_PRECISION");
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("f16") && msg.contains("avx2") && msg.contains("KERNELS_PRECISION"),
            "{msg}"
        );
        assert!(msg.contains("scalar: f32, bf16, f16"), "{msg}");
        assert_eq!(
            Precision::Bf16.check_on(Isa::Scalar, "the API"),
            Ok(Precision::Bf16)
        );
    }
}
