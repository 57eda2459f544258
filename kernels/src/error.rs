//! The one error type of the kernel crate.

use std::fmt;

/// Everything the safe API can refuse. Every variant names what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A buffer or tensor has the wrong length or shape.
    Shape {
        /// Which argument (for example `"dwconv3x3 input"`).
        what: &'static str,
        /// What the operation needed.
        expected: String,
        /// What it was given.
        found: String,
    },
    /// A parameter is out of its domain (for example stride 3 for a kernel that supports 1 and 2).
    Param {
        /// Which parameter.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The requested instruction set is not supported by this CPU or not built for this target.
    IsaUnavailable {
        /// The tier asked for.
        isa: &'static str,
        /// Where the request came from (`KERNELS_ISA` or the API).
        source: &'static str,
        /// The tiers this CPU and target can run, comma-separated (filled in by the `isa` module,
        /// so this module needs nothing of it).
        available: String,
    },
    /// `KERNELS_ISA` names no known tier.
    IsaUnknown {
        /// The value that was set.
        value: String,
    },
    /// No kernel is registered for this operation and instruction set.
    NoKernel {
        /// The operation.
        op: &'static str,
        /// The instruction set.
        isa: &'static str,
    },
    /// The requested precision is not available on the requested tier on this CPU.
    PrecisionUnavailable {
        /// The precision asked for.
        precision: &'static str,
        /// The tier it was asked for on.
        isa: &'static str,
        /// Where the request came from (`KERNELS_PRECISION` or the API).
        source: &'static str,
        /// What is missing: the CPU feature the precision needs on the tier, or that the tier has
        /// no kernels of it.
        need: String,
        /// What this CPU offers, per tier.
        offered: String,
    },
    /// `KERNELS_PRECISION` names no known precision.
    PrecisionUnknown {
        /// The value that was set.
        value: String,
    },
    /// No kernel is registered for this operation, precision and instruction set.
    NoKernelAt {
        /// The operation.
        op: &'static str,
        /// The precision.
        precision: &'static str,
        /// The instruction set.
        isa: &'static str,
    },
}

impl Error {
    pub(crate) fn shape(
        what: &'static str,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> Self {
        Error::Shape {
            what,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    pub(crate) fn param(what: &'static str, reason: impl fmt::Display) -> Self {
        Error::Param {
            what,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape {
                what,
                expected,
                found,
            } => {
                write!(f, "{what}: expected {expected}, found {found}")
            }
            Error::Param { what, reason } => write!(f, "{what}: {reason}"),
            Error::IsaUnavailable {
                isa,
                source,
                available,
            } => write!(
                f,
                "instruction set `{isa}` requested by {source} is not available on this CPU/target (available: {available})",
            ),
            Error::IsaUnknown { value } => write!(
                f,
                "KERNELS_ISA={value:?} names no instruction set; use one of scalar, avx2, avx512, neon"
            ),
            Error::NoKernel { op, isa } => write!(f, "no `{op}` kernel is registered for `{isa}`"),
            Error::PrecisionUnavailable {
                precision,
                isa,
                source,
                need,
                offered,
            } => {
                write!(
                    f,
                    "precision `{precision}` requested by {source} is not available with instruction set `{isa}` on this CPU ({need}); this CPU offers {offered}",
                )
            }
            Error::PrecisionUnknown { value } => write!(
                f,
                "KERNELS_PRECISION={value:?} names no precision; use one of f32, bf16, f16"
            ),
            Error::NoKernelAt { op, precision, isa } => write!(
                f,
                "no `{op}` kernel is registered for precision `{precision}` on `{isa}`"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias of the kernel crate.
pub type Result<T> = std::result::Result<T, Error>;
