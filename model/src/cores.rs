//! Where the two threads of a [`Kernels`] pool run: probes that `repvit bench` prints beside every
//! multi-threaded timing, since on a virtual machine the two-thread figures depend on them. They
//! measure the machine, not a network, and run on the pool through its public
//! [`Kernels::for_each_index`] (index 0 on the calling thread, index 1 on worker 1: each thread
//! first runs its own contiguous share).

use std::sync::Mutex;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use mobile_cnn_kernels::Kernels;

/// Spins until `cond` holds (true), or until `limit` has passed or `give_up` holds (false). The
/// clock and `give_up` are read every 1024 spins, so the spinning thread answers `cond` at once.
/// For the probes ([`core_round_trip`], [`core_sharing`]).
fn spin_until(cond: &dyn Fn() -> bool, limit: Duration, give_up: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    let mut n = 0u32;
    while !cond() {
        n = n.wrapping_add(1);
        if n.is_multiple_of(1024) && (t0.elapsed() > limit || give_up()) {
            return false;
        }
        std::hint::spin_loop();
    }
    true
}

/// How far apart the cores of this pool's first two threads are: the median time, over 9
/// batches of 1000, of one message from the calling thread to worker 1 and back (a cache line
/// written on one core, read and answered from the other). `None` with one thread, or when no
/// worker joined within 10 ms (a worker preempted by another process).
///
/// Why it is worth knowing: on a virtual machine the same two virtual CPUs can sit on cores of
/// one L3 cache or on cores far apart, and the placement can change from minute to minute. On
/// 2-core AMD EPYC Zen 4 VMs (2026-12-06) this read 60-76 ns (two cores of one L3), 293-341 ns
/// (cores far apart) or 25-51 ns (one core's two hardware threads: see
/// [`core_sharing`]); far apart, every engine ran slower at two threads (RepViT-M1.0
/// here 12.3-14.3 ms instead of 11.3-12.3, one thread unchanged), so two-thread figures mean
/// little without it. `repvit bench` reports it beside every multi-threaded timing
/// (`results/amd-epyc-zen4-2026-12-06-placement/`).
pub fn core_round_trip(k: &Kernels) -> Option<Duration> {
    /// The message: a counter alone on its cache line (and the adjacent-line prefetcher's).
    #[repr(align(128))]
    struct Line(AtomicU64);
    const TRIPS: u64 = 1000;
    const BATCHES: u64 = 9;
    const READY: u64 = 1;
    const DONE: u64 = u64::MAX;
    if k.threads() < 2 {
        return None;
    }
    let line = Line(AtomicU64::new(0));
    let abort = AtomicBool::new(false);
    let result = Mutex::new(None);
    // Either side stops waiting once the other has given up.
    let spin_until = |cond: &dyn Fn() -> bool, limit: Duration| -> bool {
        spin_until(cond, limit, || abort.load(Relaxed))
    };
    // Index 0 is the calling thread's share and index 1 worker 1's (`pool.rs`: slot `s` first
    // runs its own contiguous share). Should the caller end up running both (no worker came),
    // the ping side gives up after 10 ms and the pong side then returns at once.
    k.for_each_index(2, |_, i| {
        if i == 1 {
            // Pong: announce, then answer every even message `v` with `v + 1`.
            line.0.store(READY, Release);
            let mut last = READY;
            loop {
                let fresh = || {
                    let v = line.0.load(Acquire);
                    v != last
                };
                if !spin_until(&fresh, Duration::from_secs(1)) {
                    return;
                }
                let v = line.0.load(Acquire);
                if v == DONE {
                    return;
                }
                last = v + 1;
                line.0.store(last, Release);
            }
        }
        // Ping.
        if !spin_until(&|| line.0.load(Acquire) == READY, Duration::from_millis(10)) {
            abort.store(true, Relaxed);
            return;
        }
        let mut batches = Vec::with_capacity(BATCHES as usize);
        for b in 0..BATCHES {
            let t0 = Instant::now();
            for j in 0..TRIPS {
                let v = 2 * (b * TRIPS + j) + 2;
                line.0.store(v, Release);
                if !spin_until(&|| line.0.load(Acquire) == v + 1, Duration::from_secs(1)) {
                    abort.store(true, Relaxed);
                    return;
                }
            }
            batches.push(t0.elapsed() / TRIPS as u32);
        }
        line.0.store(DONE, Release);
        batches.sort();
        *result.lock().unwrap_or_else(|e| e.into_inner()) = Some(batches[batches.len() / 2]);
    });
    result.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Whether the pool's first two threads share one physical core (SMT siblings): how much
/// longer a multiply-bound loop (8 independent chains of 40 000 64-bit multiplies) takes on
/// the calling thread while worker 1 runs the same loop at the same moment than while it runs
/// alone; the median of 3 such pairs. About 1.0 on two cores; about 2 on two hardware threads of one
/// core, which share the multiplier. `None` with one thread, or when no worker joined within
/// 10 ms.
///
/// Why: a VM's two virtual CPUs can also land on the two hardware threads of one core, where a
/// second thread adds little to arithmetic-bound work. On the 2-core AMD EPYC Zen 4 VMs of
/// 2026-12-06 some rounds ran so (core round trip 25-51 ns): RepViT-M1.1 at two threads took
/// 26.5 ms there against 14.6 on two cores. See [`core_round_trip`].
pub fn core_sharing(k: &Kernels) -> Option<f64> {
    if k.threads() < 2 {
        return None;
    }
    // 8 chains of multiply-add: bound by the one 64-bit multiplier port (x86-64 and aarch64
    // cores alike), not by latency, so a sibling thread doing the same halves the rate.
    fn work() -> Duration {
        let t0 = Instant::now();
        let mut a: [u64; 8] = std::hint::black_box([1, 2, 3, 4, 5, 6, 7, 8]);
        for _ in 0..40_000 {
            for x in &mut a {
                *x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
            }
        }
        std::hint::black_box(a);
        t0.elapsed()
    }
    let mut ratios = Vec::with_capacity(3);
    for _ in 0..3 {
        let alone = work().min(work());
        let arrived = AtomicU64::new(0);
        let together = Mutex::new(None);
        k.for_each_index(2, |_, i| {
            // Both start only once both are here; a lone thread (no worker came) gives up.
            arrived.fetch_add(1, AcqRel);
            let both = || arrived.load(Acquire) >= 2;
            if !spin_until(&both, Duration::from_millis(10), || false) {
                // Past the deadline: count this thread out, so the other side (should it
                // come later, on this very thread) cannot mistake it for a partner.
                arrived.fetch_add(2, AcqRel);
                return;
            }
            if arrived.load(Acquire) != 2 {
                return;
            }
            let t = work();
            if i == 0 {
                *together.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
            }
        });
        let t = together.into_inner().unwrap_or_else(|e| e.into_inner())?;
        ratios.push(t.as_secs_f64() / alone.as_secs_f64().max(1e-9));
    }
    ratios.sort_by(f64::total_cmp);
    Some(ratios[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_cnn_kernels::Isa;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs `probe` on `k` while another thread keeps `k`'s pool busy (its call's two blocks wait
    /// for a release), so no worker can join the probe: the pool then runs the probe's blocks on
    /// the calling thread, one after the other, as when a preempted worker never comes.
    fn with_workers_held<R>(k: &Kernels, probe: impl FnOnce() -> R) -> R {
        let inside = AtomicUsize::new(0);
        let release = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                k.for_each_index(2, |_, _| {
                    inside.fetch_add(1, Ordering::SeqCst);
                    while !release.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                });
            });
            // One block started: that call holds the pool (its other block may still be waiting
            // for a thread, which is the point).
            while inside.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let r = probe();
            release.store(true, Ordering::SeqCst);
            r
        })
    }

    /// Both probes measure with two threads (what they read depends on the machine, so only the
    /// range is checked), read nothing with one, and give up rather than wait when the worker does
    /// not come: the caller must not spin forever on a message nobody answers.
    #[test]
    fn core_probes_need_a_second_thread_that_answers() {
        let one = Kernels::with_isa(Isa::Scalar)
            .unwrap()
            .with_threads(1)
            .unwrap();
        assert_eq!(core_round_trip(&one), None);
        let two = Kernels::with_isa(Isa::Scalar)
            .unwrap()
            .with_threads(2)
            .unwrap();
        // A worker can miss its 10 ms to join on a loaded machine; then there is no reading.
        if let Some(rt) = (0..5).find_map(|_| core_round_trip(&two)) {
            assert!(
                rt > Duration::ZERO && rt < Duration::from_millis(10),
                "{rt:?}"
            );
        }
        let t0 = Instant::now();
        let held = with_workers_held(&two, || core_round_trip(&two));
        assert_eq!(
            held, None,
            "no worker joined, yet a round trip was reported"
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let held = with_workers_held(&two, || core_sharing(&two));
        assert_eq!(
            held, None,
            "no worker joined, yet a sharing ratio was reported"
        );
        assert_eq!(core_sharing(&one), None);
        if let Some(r) = (0..5).find_map(|_| core_sharing(&two)) {
            // The loop on two threads at once takes 1-2 times as long as alone (more only when
            // something else takes the cores).
            assert!(r > 0.3 && r < 20.0, "{r}");
        }
        // The pool still works afterwards.
        let hits: Vec<AtomicUsize> = (0..8).map(|_| AtomicUsize::new(0)).collect();
        two.for_each_index(8, |_, i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }
}
