//! Shared pieces of the benchmarks: the peak-FMA probe, the shapes of the networks benchmarked, and
//! the criterion settings. The report writer (`src/bin/report.rs`) turns criterion's results into
//! a record under `results/`.

pub mod charts;
pub mod criterion_results;
pub mod estimate;
pub mod machine;
pub mod peak;
pub mod report;
pub mod shapes;

use mobile_cnn_kernels::Isa;
use std::time::Duration;

/// The tiers to benchmark: every available one, or only `KERNELS_ISA` when it is set.
pub fn isas_to_bench() -> Vec<Isa> {
    match std::env::var(mobile_cnn_kernels::isa::ISA_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            vec![Isa::from_env_value(&v).unwrap_or_else(|e| panic!("{e}"))]
        }
        _ => Isa::available(),
    }
}

/// `BENCH_QUICK=1` shortens every measurement (for a first look; figures are noisier).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty())
}

/// Criterion settings shared by the benchmarks: short warm-up and measurement windows, since
/// each kernel call is microseconds and there are many shapes.
pub fn criterion_config() -> criterion::Criterion {
    // About 260 kernel and 260 model benchmarks. Criterion's analysis (bootstrap resamples, also
    // for the comparison with the previous run) cost more than the measurement itself at its
    // default 100 000 resamples (about 2 s a benchmark on a loaded 2-core machine); 10 000 are
    // plenty for a median's confidence interval. With these windows the whole `cargo bench`
    // (kernels then model) fits in 15 minutes on a 2-core machine.
    let (warm, meas, samples) = if quick() {
        (0.1, 0.3, 10)
    } else {
        (0.3, 0.8, 20)
    };
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs_f64(warm))
        .measurement_time(Duration::from_secs_f64(meas))
        .sample_size(samples)
        .nresamples(10_000)
        .noise_threshold(0.03)
}
