//! SIMD kernels for mobile CNN inference: NHWC f32 activations, runtime ISA dispatch.
//!
//! The crate knows nothing of any particular network. Each operation has
//! - a reference implementation in [`mod@reference`] (plain loops, the oracle of the tests),
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
//! Ops bind their kernel once, when they are made (`PackedPointwise::pack*`, [`DwConv::create`],
//! [`se::SqueezeExcite::new`], [`elementwise::Elementwise::new`]), and take their threads from the
//! [`Kernels`] they run with. [`DwConv::run_bands`] is the threaded depthwise (row bands sized from
//! the shape, squeeze-excite sums added in band order: the same bits for any thread count), and
//! [`layout`] the NCHW <-> NHWC copies. The kernel function types and geometries every tier
//! implements are in [`ukernel`].
//!
//! Start with the example `kernels/examples/inverted_residual.rs` (`cargo run -p
//! mobile-cnn-kernels --example inverted_residual`): an inverted-residual block (pointwise expand,
//! depthwise 3x3 with squeeze-excite, pointwise project with the residual) from this public API
//! alone, at two threads, checked against [`mod@reference`] by `kernels/tests/inverted_residual.rs`.
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
mod dwconv_bands;
mod dwconv_kxk;
pub mod elementwise;
pub mod error;
mod generic;
pub mod isa;
pub mod layout;
pub mod linear;
pub mod pointwise;
mod pool;
pub mod reference;
pub mod registry;
pub mod se;
pub mod tensor;
pub mod ukernel;

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod portable;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use activation::Activation;
pub use conv::Conv3x3;
pub use dwconv::DwConv;
pub use error::{Error, Result};
pub use isa::{Isa, Precision};
pub use pointwise::PackedPointwise;
pub use tensor::{ALIGN, AlignedBuf, SendPtr, Shape, Tensor};
pub use ukernel::{DwConvGeom, PointwiseGeom, PointwiseHalfFn};

/// A chosen, verified instruction set and a thread count: the handle every safe operation runs with.
///
/// Threads split an operation into disjoint output blocks (never a reduction), so results are
/// bitwise the same for any thread count. The default uses one process-wide pool with a thread per
/// core ([`std::thread::available_parallelism`]); [`Kernels::with_threads`] starts a pool of its own.
/// The pool's threads spin for a moment after each call before they sleep (see `pool.rs`).
#[derive(Clone)]
pub struct Kernels {
    isa: Isa,
    precision: Precision,
    threads: usize,
    pool: Option<std::sync::Arc<pool::SpinPool>>,
}

/// The process-wide pool of [`Kernels::new`] and [`Kernels::with_isa`]: a thread per core, started
/// on first use; none on one core (or if the threads cannot be started: everything then runs on the
/// calling thread, with the same results).
fn global_pool() -> Option<std::sync::Arc<pool::SpinPool>> {
    static GLOBAL: std::sync::OnceLock<Option<std::sync::Arc<pool::SpinPool>>> =
        std::sync::OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            (threads > 1)
                .then(|| pool::SpinPool::new(threads).ok().map(std::sync::Arc::new))
                .flatten()
        })
        .clone()
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
            ..Kernels::on_global_pool()
        })
    }

    /// Scalar f32 on the process-wide pool (the caller sets the tier and precision).
    fn on_global_pool() -> Kernels {
        let pool = global_pool();
        Kernels {
            isa: Isa::Scalar,
            precision: Precision::F32,
            threads: pool.as_ref().map_or(1, |p| p.threads()),
            pool,
        }
    }

    /// An explicit tier, f32; an error if this CPU or target cannot run it. All cores.
    pub fn with_isa(isa: Isa) -> Result<Kernels> {
        Ok(Kernels {
            isa: isa.check("the API")?,
            precision: Precision::F32,
            ..Kernels::on_global_pool()
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
            // The calling thread is one of them: it takes a share of every parallel call.
            let pool = pool::SpinPool::new(threads).map_err(|e| Error::Param {
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
    ///
    /// Blocks must be independent (each writes its own part of the output): which thread runs which
    /// block, and in what order, varies from call to call.
    pub fn for_each_block<T: Sync>(&self, blocks: &[T], f: impl Fn(&T) + Sync + Send) {
        self.for_each_block_in_slot(blocks, |_, b| f(b));
    }

    /// As [`Kernels::for_each_block`], and tells `f` the slot of the thread running it: a number
    /// below [`Kernels::threads`] and below the number of blocks, that no other thread of this call holds at the same time (0 is the
    /// calling thread). Callers index per-thread scratch by it, so a call allocates nothing.
    pub fn for_each_block_in_slot<T: Sync>(
        &self,
        blocks: &[T],
        f: impl Fn(usize, &T) + Sync + Send,
    ) {
        self.for_each_index(blocks.len(), |slot, i| f(slot, &blocks[i]));
    }

    /// Calls `f(slot, i)` once for every `i` in `0..count`, in parallel when more than one thread is
    /// allowed; `slot` is as in [`Kernels::for_each_block_in_slot`]. Nothing is allocated: callers
    /// compute block `i` from the index instead of listing blocks.
    pub fn for_each_index(&self, count: usize, f: impl Fn(usize, usize) + Sync + Send) {
        match &self.pool {
            // The calling thread works too (slot 0); every thread first runs its own contiguous
            // share of the indices, then helps with the others' (see `pool.rs`).
            Some(pool) if count > 1 => pool.run(count, &f),
            _ => (0..count).for_each(|i| f(0, i)),
        }
    }

    /// Calls `f(slot, i, &mut items[i])` once for every item, in parallel when more than one thread
    /// is allowed (`slot` as in [`Kernels::for_each_block_in_slot`]): for independent jobs that each
    /// own their state, such as groups of images with their own buffers.
    pub fn for_each_mut<T: Send>(&self, items: &mut [T], f: impl Fn(usize, usize, &mut T) + Sync) {
        let base = SendMutPtr(items.as_mut_ptr());
        let len = items.len();
        self.for_each_index(len, |slot, i| {
            assert!(i < len);
            // SAFETY: `i < len` (asserted), so the element is inside `items`, which is exclusively
            // borrowed for the whole call; `for_each_index` hands every index to exactly one call,
            // so no two threads hold a reference to the same element.
            let item = unsafe { &mut *base.get().add(i) };
            f(slot, i, item)
        });
    }

    /// Cuts `data` into consecutive chunks of `chunk_len` elements (the last may be shorter) and calls
    /// `f(slot, i, chunk_i)` once per chunk, in parallel when more than one thread is allowed
    /// (`slot` as in [`Kernels::for_each_block_in_slot`]). Nothing is allocated. For bands of rows
    /// of an output tensor; a `chunk_len` of 0 is treated as 1.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, usize, &mut [T]) + Sync,
    ) {
        let chunk_len = chunk_len.max(1);
        let len = data.len();
        let base = SendMutPtr(data.as_mut_ptr());
        self.for_each_index(len.div_ceil(chunk_len), |slot, i| {
            let start = i * chunk_len;
            let end = (start + chunk_len).min(len);
            assert!(start < end);
            // SAFETY: `start < end <= len`, so the range is inside `data`, which is exclusively
            // borrowed for the whole call; `for_each_index` hands each `i` to one call and the
            // ranges of different `i` do not overlap, so no element is reachable from two threads.
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            f(slot, i, chunk)
        });
    }

    /// Cuts an NHWC buffer (`c` values per pixel, `hw` pixels per image, whole pixels) into `parts`
    /// contiguous shares of pixels, in parallel as [`Kernels::for_each_chunk_mut`] (one share per
    /// thread gives each thread the rows its share of the neighbouring steps uses), and calls
    /// `f(image, p0, run)` for each run of a share that lies in one image: `run` holds that image's
    /// pixels `p0..p0 + run.len() / c`. For element-wise passes that need the image of a pixel (a
    /// per-image scale, a layout change). A trailing partial pixel, if any, is not visited.
    pub fn for_each_pixel_run<T: Send>(
        &self,
        data: &mut [T],
        c: usize,
        hw: usize,
        parts: usize,
        f: impl Fn(usize, usize, &mut [T]) + Sync,
    ) {
        let (c, hw) = (c.max(1), hw.max(1));
        let pixels = data.len() / c;
        let per_part = pixels.div_ceil(parts.max(1)).max(1);
        self.for_each_chunk_mut(&mut data[..pixels * c], per_part * c, |_, i, part| {
            let mut q = i * per_part;
            let mut rest = part;
            while !rest.is_empty() {
                let (image, p0) = (q / hw, q % hw);
                let run = (hw - p0).min(rest.len() / c);
                let (head, tail) = rest.split_at_mut(run * c);
                f(image, p0, head);
                rest = tail;
                q += run;
            }
        });
    }

    /// The same tier on the calling thread alone (no pool): for work inside one parallel block.
    pub fn single_threaded(&self) -> Kernels {
        Kernels {
            isa: self.isa,
            precision: self.precision,
            threads: 1,
            pool: None,
        }
    }
}

/// A raw element pointer that may cross to the worker threads of [`Kernels::for_each_mut`].
struct SendMutPtr<T>(*mut T);
// SAFETY: only used by `for_each_mut`, which hands each element to one thread (and `T: Send`).
unsafe impl<T: Send> Send for SendMutPtr<T> {}
// SAFETY: as above: shared use only copies the pointer; each element is reached by one thread.
unsafe impl<T: Send> Sync for SendMutPtr<T> {}
impl<T> SendMutPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Every index, item and chunk is visited exactly once, with a slot below the thread count, for
    /// counts below, equal to and above the thread count (and zero).
    #[test]
    fn parallel_helpers_visit_everything_once_with_valid_slots() {
        for threads in 1..=4 {
            let k = Kernels::with_isa(Isa::Scalar)
                .unwrap()
                .with_threads(threads)
                .unwrap();
            for count in [0, 1, 2, 3, 7, 64] {
                let hits: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
                k.for_each_index(count, |slot, i| {
                    assert!(
                        slot < threads.min(count),
                        "slot {slot} of {threads}, {count} blocks"
                    );
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));

                let mut items = vec![0usize; count];
                k.for_each_mut(&mut items, |slot, i, v| {
                    assert!(slot < threads);
                    *v += i + 1;
                });
                assert_eq!(items, (1..=count).collect::<Vec<_>>());

                for chunk in [1, 3, 5, 100] {
                    let mut data = vec![0usize; count];
                    k.for_each_chunk_mut(&mut data, chunk, |slot, i, part| {
                        assert!(slot < threads);
                        assert!(part.len() <= chunk && !part.is_empty());
                        for v in part.iter_mut() {
                            *v += i + 1;
                        }
                    });
                    let want: Vec<usize> = (0..count).map(|j| j / chunk + 1).collect();
                    assert_eq!(data, want, "threads {threads} count {count} chunk {chunk}");
                }

                // Pixel runs: every value once, with its own image and pixel index, for shares
                // that start and end inside images.
                for (c, hw, parts) in [(1, 5, threads), (3, 7, threads), (2, 4, 3), (5, 1, 2)] {
                    let mut data = vec![(usize::MAX, usize::MAX); count * c];
                    k.for_each_pixel_run(&mut data, c, hw, parts, |img, p0, run| {
                        assert!(!run.is_empty() && run.len() % c == 0 && p0 + run.len() / c <= hw);
                        for (j, v) in run.iter_mut().enumerate() {
                            assert_eq!(*v, (usize::MAX, usize::MAX), "visited twice");
                            *v = (img, p0 + j / c);
                        }
                    });
                    let want: Vec<_> = (0..count * c).map(|e| (e / c / hw, e / c % hw)).collect();
                    assert_eq!(data, want, "threads {threads} count {count} c {c} hw {hw}");
                }
            }
        }
    }
}
