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
//! - Preemption. A call waits only for the workers that joined it, never for one that has not
//!   started: a worker joins through a gate that the caller closes once every block is claimed, so
//!   a worker that lost its core to another process (a third runnable thread on two cores) costs the
//!   call nothing unless it holds a block. Waiting for every worker to check in, as a per-call count
//!   of workers did until 2026-11-30, made two threads 15 times slower than on a quiet machine
//!   beside a `nice 19` qemu-user process (AMD EPYC Zen 3, 2 cores: RepViT-M1.0 232 ms median
//!   instead of 14.8, MobileNetV3-L 142 instead of 4.7; with the gate 51 and 13-18 ms). What is left
//!   is a preempted worker's block in flight: nothing but the worker can finish it.
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

/// [`Shared::gate`]: set while the current call accepts workers; the bits below count the workers
/// inside its job.
const OPEN: usize = 1 << (usize::BITS - 1);

/// How long the caller, its own blocks done and every block claimed, spins for workers still inside
/// a block before it also yields its core between checks (a yield hands the core to any other
/// runnable thread, for a whole time slice).
const WAIT_SPIN: Duration = Duration::from_micros(200);

/// The job of the current call: `f(slot)` takes blocks until none are left. Lifetime-erased: the
/// caller waits until every worker has finished with it before it returns (see [`SpinPool::run`]).
type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per call (and at shutdown); workers wait for it to change.
    epoch: AtomicU64,
    /// The current call's job; written by the caller before it opens `gate`, read by workers after
    /// they joined through `gate`.
    job: UnsafeCell<Option<Job>>,
    /// [`OPEN`] while the current call accepts workers, plus the number of workers inside its job.
    /// A worker joins by incrementing it while `OPEN` is set and leaves by decrementing it; the
    /// caller clears `OPEN` once it has claimed or seen claimed every block, then waits for zero.
    gate: AtomicUsize,
    /// Workers asleep on `wake` (or about to be).
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
    /// The first panic of a block during the current call (on any thread), resumed on the caller.
    panic: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    /// Tests: while set, workers that saw a new call wait before joining it, as a preempted worker
    /// would.
    #[cfg(test)]
    hold: AtomicBool,
}

// SAFETY: `job` is the only non-Sync field. It is written only by the caller holding `SpinPool::busy`
// while no worker can read it (`gate` is zero: closed and empty), and read by workers only between
// joining through `gate` (an Acquire read-modify-write of the value the caller's Release store
// opened it with, so after the caller's write of `job`) and leaving it (Release, before the caller's
// Acquire wait for zero ends).
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
            gate: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
            panic: Mutex::new(None),
            #[cfg(test)]
            hold: AtomicBool::new(false),
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
    /// the others'. The first panic of a call is resumed here once every other block has run.
    pub(crate) fn run(&self, count: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let _busy = match self.busy.try_lock() {
            Ok(g) => g,
            // A panic resumed by an earlier call poisoned the lock; the state it guards (`job`,
            // `gate`) was restored before that panic was resumed.
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
        let sh = &*self.shared;
        // Claims and runs blocks until none is left. A panicking block is caught and kept (the
        // first one per call), so `take` never unwinds: every other block still runs, and the
        // blocks are all claimed when the caller's `take` returns, which closing the gate relies on.
        let take = |slot: usize| {
            if slot >= t {
                return;
            }
            let run = |i: usize| {
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(slot, i))) {
                    let mut first = sh.panic.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert(p);
                }
            };
            for k in 0..t {
                let s = (slot + k) % t;
                let end = self.end[s].0.load(Ordering::Relaxed);
                loop {
                    let i = self.next[s].0.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    run(i);
                }
            }
        };
        let job: &(dyn Fn(usize) + Sync) = &take;
        // SAFETY: the lifetime is erased only for the duration of this call: `job` is read by
        // workers only while they are inside `gate`, and this function does not return (nor unwind:
        // `take` catches every panic of a block) before `gate` is closed and empty, so `take`
        // outlives every use.
        let job: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(job) };
        // SAFETY: we hold `busy` and `gate` is zero (the last call closed it and waited until it was
        // empty), so no worker can join and read `job` now.
        unsafe { *sh.job.get() = Some(job) };
        sh.gate.store(OPEN, Ordering::Release);
        sh.epoch.fetch_add(1, Ordering::SeqCst);
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        // `take` returns once every block of every run has been claimed (by this thread or by a
        // worker inside the gate), so closing the gate now turns away only workers that would find
        // nothing to do: a worker that has not started yet (still waking, or preempted) is not
        // waited for.
        take(0);
        sh.gate.fetch_and(!OPEN, Ordering::AcqRel);
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        while sh.gate.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024)
                && since.get_or_insert_with(Instant::now).elapsed() > WAIT_SPIN
            {
                // A worker holding a block is late (preempted): let whatever waits for a core run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: the gate is closed and empty: no worker reads `job` any more, and none can join.
        unsafe { *sh.job.get() = None };
        let first = sh.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = first {
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
        #[cfg(test)]
        while sh.hold.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Join the open call, if any. The call may be a later one than the epoch seen above (this
        // worker was preempted meanwhile); it then takes part in that one, and on its next loop
        // finds that call's blocks all claimed.
        let mut g = sh.gate.load(Ordering::Relaxed);
        let joined = loop {
            if g & OPEN == 0 {
                break false;
            }
            match sh
                .gate
                .compare_exchange_weak(g, g + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => break true,
                Err(now) => g = now,
            }
        };
        if !joined {
            continue;
        }
        // SAFETY: this worker is inside the gate, joined with an Acquire read of the value the
        // caller stored (Release) after writing `job` (see `Shared`'s Sync argument); the caller
        // keeps the closure alive until the gate is empty, which it cannot be before the decrement
        // below.
        if let Some(job) = unsafe { *sh.job.get() } {
            // SAFETY: as above.
            let job = unsafe { &*job };
            // `take` catches the panics of its blocks, so this does not unwind.
            job(slot);
        }
        sh.gate.fetch_sub(1, Ordering::Release);
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

    /// A call completes while its workers have seen it but not joined it (as when they lost their
    /// cores to other processes): the caller runs every block itself instead of waiting for them.
    /// The late workers then find the later calls and take part in them.
    #[test]
    fn a_call_does_not_wait_for_workers_that_have_not_started() {
        let pool = Arc::new(SpinPool::new(3).unwrap());
        pool.shared.hold.store(true, Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        let caller = std::thread::spawn(move || {
            let hits: Vec<usize> = (0..3).flat_map(|_| visit_all(&p, 100)).collect();
            tx.send(hits).unwrap();
        });
        let hits = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("calls waited for workers that had not joined them");
        assert!(hits.iter().all(|&h| h == 1));
        caller.join().unwrap();
        pool.shared.hold.store(false, Ordering::SeqCst);
        for count in [1, 2, 50, 1000] {
            assert!(visit_all(&pool, count).iter().all(|&h| h == 1));
        }
    }

    /// A panic in a block (on whichever thread) reaches the caller after every other block ran,
    /// and the pool works afterwards; also when the workers are late and the caller, its own
    /// block 0 failing, must still run every other block itself (the gate closes after the
    /// caller's blocks: a caller that stopped at its panic turned the late workers away with
    /// blocks unclaimed, found by ThreadSanitizer's slow threads).
    #[test]
    fn a_panic_in_a_block_is_resumed_and_the_pool_recovers() {
        let pool = SpinPool::new(3).unwrap();
        for (bad, hold) in [(0, false), (5, false), (11, false), (0, true), (7, true)] {
            pool.shared.hold.store(hold, Ordering::SeqCst);
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
            pool.shared.hold.store(false, Ordering::SeqCst);
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
