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
//! Precision is a second axis ([`Precision`]: `f32`, `bf16`, `f16`): [`Kernels::new`] reads
//! `KERNELS_PRECISION` (default `f32`) and [`Kernels::with_precision`] sets it; either is an error
//! when the tier lacks the precision on this CPU. Ops with a kernel of that precision (the
//! pointwise GEMM, [`PackedPointwise::pack_precision`]) use it; everything else stays f32.
//!
//! ```
//! use mobile_cnn_kernels::{Isa, Kernels};
//! let k = Kernels::new().unwrap();
//! assert!(k.isa().is_available());
//! assert!(Kernels::with_isa(Isa::Scalar).is_ok());
//! ```

pub mod activation;
pub mod conv;
pub mod convert;
pub mod dwconv;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod dwconv_kxk;
pub mod elementwise;
pub mod error;
pub mod isa;
pub mod linear;
pub mod pointwise;
pub mod reference;
pub mod registry;
pub mod se;
pub mod tensor;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use activation::Activation;
pub use conv::Conv3x3;
pub use dwconv::{DwConv, DwConv3x3, DwConvGeom, dwconv};
pub use error::{Error, Result};
pub use isa::{Isa, Precision};
pub use pointwise::{PackedPointwise, PointwiseGeom, PointwiseHalfFn};
pub use tensor::{ALIGN, AlignedBuf, Shape, Tensor};

/// A chosen, verified instruction set and a thread count: the handle every safe operation runs with.
///
/// Threads split an operation into disjoint output blocks (never a reduction), so results are
/// bitwise the same for any thread count. The default uses rayon's global pool (all cores).
#[derive(Clone)]
pub struct Kernels {
    isa: Isa,
    precision: Precision,
    threads: usize,
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("isa", &self.isa)
            .field("precision", &self.precision)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Kernels {
    /// The process default: `KERNELS_ISA` if set (an error if unknown or unavailable), else the
    /// widest tier; `KERNELS_PRECISION` if set (an error if unknown or if the tier lacks it on this
    /// CPU, naming what the CPU offers), else f32; all cores.
    pub fn new() -> Result<Kernels> {
        let isa = Isa::selected()?;
        Ok(Kernels {
            isa,
            precision: Precision::selected()?.check_on(isa, "KERNELS_PRECISION")?,
            threads: rayon::current_num_threads(),
            pool: None,
        })
    }

    /// An explicit tier, f32; an error if this CPU or target cannot run it. All cores.
    pub fn with_isa(isa: Isa) -> Result<Kernels> {
        Ok(Kernels {
            isa: isa.check("the API")?,
            precision: Precision::F32,
            threads: rayon::current_num_threads(),
            pool: None,
        })
    }

    /// The same tier and threads at `precision`; an error if the tier lacks it on this CPU.
    pub fn with_precision(self, precision: Precision) -> Result<Kernels> {
        Ok(Kernels {
            precision: precision.check_on(self.isa, "the API")?,
            ..self
        })
    }

    /// The precision of the ops that have kernels for it (the others run in f32).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The same tier with `threads` worker threads (1 runs on the calling thread alone).
    pub fn with_threads(self, threads: usize) -> Result<Kernels> {
        if threads == 0 {
            return Err(Error::Param {
                what: "threads",
                reason: "expected at least 1, found 0".into(),
            });
        }
        let pool = if threads == 1 {
            None
        } else {
            // The calling thread is the other one: it takes a share of every parallel call.
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads - 1)
                .thread_name(|i| format!("mobile-cnn-kernels-{i}"))
                .build()
                .map_err(|e| Error::Param {
                    what: "threads",
                    reason: format!("cannot start {threads} threads: {e}"),
                })?;
            Some(std::sync::Arc::new(pool))
        };
        Ok(Kernels {
            isa: self.isa,
            precision: self.precision,
            threads,
            pool,
        })
    }

    /// The tier in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Worker threads operations may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on every block, in parallel when more than one thread is allowed.
    pub(crate) fn for_each_block<T: Sync>(&self, blocks: &[T], f: impl Fn(&T) + Sync + Send) {
        if self.threads <= 1 || blocks.len() <= 1 {
            blocks.iter().for_each(f);
            return;
        }
        // The calling thread works too: it and `threads - 1` pool workers pull blocks off one shared
        // counter until none are left. One hand-off per call (waking the workers) instead of two
        // (into the pool and back out, about 10 us per call with `install`), and uneven blocks
        // balance themselves.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match blocks.get(i) {
                    Some(b) => f(b),
                    None => break,
                }
            }
        };
        let helpers = self.threads.min(blocks.len()) - 1;
        let work = &work;
        macro_rules! run {
            () => {
                |s| {
                    for _ in 0..helpers {
                        s.spawn(move |_| work());
                    }
                    work();
                }
            };
        }
        match &self.pool {
            Some(pool) => pool.in_place_scope(run!()),
            None => rayon::in_place_scope(run!()),
        }
    }
}
