//! The worker threads behind [`crate::Kernels::for_each_index`]: a fixed set of threads that spin
//! between calls, and a split that gives every thread the same share of every call.
//!
//! Why not rayon's pool (used until 2026-11-30): two costs it cannot avoid showed in the per-layer
//! times of RepViT at two threads.
//! - Waking. A rayon worker that finds no work yields a few dozen times and then sleeps on a futex;
//!   the depthwise and squeeze-excite steps between two pointwise steps (10-150 us) are long enough
//!   for that, so the next parallel call waited for a wake-up (a system call, and in a VM a virtual
//!   CPU leaving its halt). Here a worker spins on the call counter for [`SPIN`] after its last
//!   call before it sleeps, as pthreadpool's workers (XNNPACK's) do, so calls in one forward pass
//!   never wait for a wake-up.
//! - Locality. Rayon (and the shared counter used with it) hands blocks to whichever thread asks
//!   first, so a step reads, on average, half of its input from the other core's cache. Here the
//!   blocks of a call are cut into one contiguous run per thread (slot `s` of `t` starts at block
//!   `s * count / t`); callers list blocks in row order, so consecutive steps give each thread the
//!   same rows, and it reads what it just wrote. A thread that finishes its run takes the blocks
//!   left in the others' runs (from their ends backwards would fight their prefetch; it takes them
//!   in order, one at a time, through the same counters), so a slow or preempted thread is covered.
//!
//! Which thread runs which block never changes a result: blocks write disjoint outputs.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker keeps spinning for the next call after its last one before it sleeps. Long
/// enough to cover the serial steps inside a forward pass and the gap between two passes of a
/// benchmark or a camera loop's back-to-back frames; short enough that an idle process stops
/// burning CPU almost at once.
pub(crate) const SPIN: Duration = Duration::from_millis(2);

/// One work counter per thread, on its own cache line so that threads taking blocks from their own
/// run do not contend.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Counter(AtomicUsize);

/// The job of the current call: `f(slot)` takes blocks until none are left. Lifetime-erased: the
/// caller waits until every worker has finished with it before it returns (see [`SpinPool::run`]).
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per call (and at shutdown); workers wait for it to change.
    epoch: AtomicU64,
    /// The current call's job; written by the caller before it bumps `epoch`, read by workers after
    /// they see the new epoch.
    job: UnsafeCell<Option<Job>>,
    /// Workers still inside the current call's job.
    pending: AtomicUsize,
    /// Workers asleep on `wake` (or about to be).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
    /// The first panic of a worker during the current call, resumed on the caller.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

// SAFETY: `job` is the only non-Sync field. It is written only by the caller holding `SpinPool::busy`
// while no worker reads it (before the epoch bump, or after `pending` reached zero), and read by
// workers only between seeing a new epoch (Acquire, after the caller's Release write) and
// decrementing `pending` (Release, before the caller's Acquire wait ends).
unsafe impl Sync for Shared {}
// SAFETY: the raw pointer in `job` is only a borrow of the caller's closure (which is `Sync`, so it may
// be called from any thread), used under the protocol above; everything else in `Shared` is `Send`.
unsafe impl Send for Shared {}

/// `threads - 1` workers; the calling thread is slot 0 and works too.
pub(crate) struct SpinPool {
    shared: Arc<Shared>,
    /// Per-slot block counters of the current call.
    next: Box<[Counter]>,
    /// Per-slot end of its run of blocks.
    end: Box<[Counter]>,
    /// Held for a whole call: one call at a time; a second concurrent caller runs its blocks itself.
    busy: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SpinPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpinPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl SpinPool {
    /// A pool of `threads` (at least 2) participants: the caller and `threads - 1` new threads.
    pub(crate) fn new(threads: usize) -> std::io::Result<SpinPool> {
        assert!(threads >= 2, "a pool needs at least 2 threads");
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            panic: Mutex::new(None),
        });
        let mut pool = SpinPool {
            shared: shared.clone(),
            next: (0..threads).map(|_| Counter::default()).collect(),
            end: (0..threads).map(|_| Counter::default()).collect(),
            busy: Mutex::new(()),
            workers: Vec::with_capacity(threads - 1),
        };
        for slot in 1..threads {
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mobile-cnn-kernels-{slot}"))
                .spawn(move || worker(&shared, slot))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Participants, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.next.len()
    }

    /// Calls `f(slot, i)` once for every `i < count`, with `slot < min(threads, count)`; returns
    /// when all calls have returned. Slot `s` first runs its own contiguous share of `0..count`, then helps with
    /// the others'. A panic in any call is resumed here once all participants are done.
    pub(crate) fn run(&self, count: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let _busy = match self.busy.try_lock() {
            Ok(g) => g,
            // A panic resumed by an earlier call poisoned the lock; the state it guards (`job`,
            // `pending`) was restored before that panic was resumed.
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // Another thread is using the pool (or this is a call from inside a block): run
                // every block here.
                (0..count).for_each(|i| f(0, i));
                return;
            }
        };
        // At most one participant per index, so slots stay below `min(threads, count)` (callers
        // size per-slot scratch by that); the others return at once.
        let t = self.threads().min(count);
        for s in 0..t {
            self.next[s].0.store(s * count / t, Ordering::Relaxed);
            self.end[s].0.store((s + 1) * count / t, Ordering::Relaxed);
        }
        let take = |slot: usize| {
            if slot >= t {
                return;
            }
            for k in 0..t {
                let s = (slot + k) % t;
                let end = self.end[s].0.load(Ordering::Relaxed);
                loop {
                    let i = self.next[s].0.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    f(slot, i);
                }
            }
        };
        let job: &(dyn Fn(usize) + Sync) = &take;
        let sh = &*self.shared;
        // SAFETY: the lifetime is erased only for the duration of this call: `job` is read by the
        // workers between the epoch bump below and their `pending` decrement, and this function does
        // not return (nor unwind: `take` on this thread runs under `catch_unwind`) before `pending`
        // is zero, so `take` outlives every use.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        // SAFETY: we hold `busy` and no worker is inside a job (`pending` was zero when the last
        // call returned), so nobody reads `job` now.
        unsafe { *sh.job.get() = Some(job) };
        sh.pending.store(self.threads() - 1, Ordering::Relaxed);
        sh.epoch.fetch_add(1, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| take(0)));
        let mut spins = 0u32;
        while sh.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                // The others are late (preempted on a busy machine): give them the core.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: every worker has decremented `pending`, so none reads `job` any more.
        unsafe { *sh.job.get() = None };
        let theirs = sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        let sh = &*self.shared;
        sh.shutdown.store(true, Ordering::SeqCst);
        sh.epoch.fetch_add(1, Ordering::SeqCst);
        {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker's life: wait for a new epoch (spinning up to [`SPIN`], then asleep), run the job,
/// report done; until shutdown.
fn worker(sh: &Shared, slot: usize) {
    let mut seen = 0u64;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        let mut epoch = sh.epoch.load(Ordering::Acquire);
        while epoch == seen {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                let mut g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
                sh.sleepers.fetch_add(1, Ordering::SeqCst);
                while sh.epoch.load(Ordering::SeqCst) == seen {
                    g = sh.wake.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                sh.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(g);
            } else {
                std::hint::spin_loop();
            }
            epoch = sh.epoch.load(Ordering::Acquire);
        }
        seen = epoch;
        if sh.shutdown.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: a new epoch was observed with Acquire after the caller's write of `job` (see
        // `Shared`'s Sync argument); the job stays valid until `pending` is decremented below.
        if let Some(job) = unsafe { *sh.job.get() } {
            // SAFETY: as above: the caller keeps the closure alive until `pending` reaches zero.
            let job = unsafe { &*job };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| job(slot))) {
                let mut first = sh.panic.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert(p);
            }
        }
        sh.pending.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn visit_all(pool: &SpinPool, count: usize) -> Vec<usize> {
        let hits: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
        pool.run(count, &|slot, i| {
            assert!(slot < pool.threads().min(count));
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        hits.into_iter().map(AtomicUsize::into_inner).collect()
    }

    /// Every index exactly once, call after call, including calls after the workers fell asleep.
    #[test]
    fn every_index_once_across_calls_and_sleeps() {
        for threads in [2, 3, 5] {
            let pool = SpinPool::new(threads).unwrap();
            for (call, count) in [0, 1, 2, 3, 7, 64, 1000, 5].into_iter().enumerate() {
                if call == 4 {
                    std::thread::sleep(SPIN * 3);
                }
                assert!(visit_all(&pool, count).iter().all(|&h| h == 1));
            }
        }
    }

    /// A panic in a block (on whichever thread) reaches the caller after every other block ran,
    /// and the pool works afterwards.
    #[test]
    fn a_panic_in_a_block_is_resumed_and_the_pool_recovers() {
        let pool = SpinPool::new(3).unwrap();
        for bad in [0, 5, 11] {
            let done = AtomicUsize::new(0);
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.run(12, &|_, i| {
                    if i == bad {
                        panic!("block {i} fails");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                })
            }));
            let msg = r.expect_err("the panic must reach the caller");
            assert_eq!(
                msg.downcast_ref::<String>().unwrap(),
                &format!("block {bad} fails")
            );
            assert_eq!(done.load(Ordering::Relaxed), 11);
            assert!(visit_all(&pool, 40).iter().all(|&h| h == 1));
        }
    }

    /// Several threads calling one pool at once, and calls from inside a block: each call still
    /// visits every index once (the ones that find the pool busy run on their own thread).
    #[test]
    fn concurrent_and_nested_calls_complete() {
        let pool = Arc::new(SpinPool::new(2).unwrap());
        let callers: Vec<_> = (0..4)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    for count in [10 + t, 100, 3] {
                        assert!(visit_all(&pool, count).iter().all(|&h| h == 1));
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        let inner = AtomicUsize::new(0);
        pool.run(4, &|_, _| {
            pool.run(5, &|_, _| {
                inner.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(inner.load(Ordering::Relaxed), 20);
    }
}
