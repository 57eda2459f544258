//! SIMD kernels for mobile CNN inference: NHWC f32 activations, runtime ISA dispatch.
//!
//! The crate knows nothing of any particular network. Each operation has
//! - a reference implementation in [`reference`] (plain loops, the oracle of the tests),
//! - a portable scalar kernel, and kernels for AVX2+FMA, AVX-512F and NEON,
//! - an entry per kernel in [`registry`], which dispatch, tests and benchmarks all read.
//!
//! Choose the instruction set once with [`Kernels`]: [`Kernels::new`] takes the widest tier this CPU
//! has, or the one named by the environment variable `KERNELS_ISA` (`scalar`, `avx2`, `avx512`,
//! `neon`; naming a tier the CPU lacks is an error, never a silent fallback), and
//! [`Kernels::with_isa`] picks one explicitly, so one process can run every tier side by side.
//!
//! ```
//! use mobile_cnn_kernels::{Isa, Kernels};
//! let k = Kernels::new().unwrap();
//! assert!(k.isa().is_available());
//! assert!(Kernels::with_isa(Isa::Scalar).is_ok());
//! ```

pub mod activation;
pub mod dwconv;
pub mod error;
pub mod isa;
pub mod reference;
pub mod registry;
pub mod tensor;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use activation::Activation;
pub use dwconv::{DwConv3x3, DwConv3x3Geom, dwconv3x3};
pub use error::{Error, Result};
pub use isa::Isa;
pub use tensor::{ALIGN, AlignedBuf, Shape, Tensor};

/// A chosen, verified instruction set: the handle every safe operation runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    isa: Isa,
}

impl Kernels {
    /// The process default: `KERNELS_ISA` if set (an error if unknown or unavailable), else the widest tier.
    pub fn new() -> Result<Kernels> {
        Ok(Kernels {
            isa: Isa::selected()?,
        })
    }

    /// An explicit tier; an error if this CPU or target cannot run it.
    pub fn with_isa(isa: Isa) -> Result<Kernels> {
        Ok(Kernels {
            isa: isa.check("the API")?,
        })
    }

    /// The tier in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}
