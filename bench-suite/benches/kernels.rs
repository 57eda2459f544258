//! Kernel benchmarks: the peak-FMA probe per ISA, every depthwise 3x3 shape of RepViT per ISA (one
//! thread) and every pointwise shape (one and two threads). Throughput is counted in floating-point operations (a multiply-add counts 2), so
//! criterion's "elem/s" reads as FLOP/s; `cargo run --release -p bench-suite --bin report` turns the
//! results into GFLOP/s and percent of the peak measured in the same run.

use std::hint::black_box;

use bench_suite::{criterion_config, isas_to_bench, peak, shapes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mobile_cnn_kernels::registry::{self, Op};
use mobile_cnn_kernels::tensor::aligned_zeros;
use mobile_cnn_kernels::{Activation, DwConv3x3Geom, Kernels, PackedPointwise};

fn bench_peak(c: &mut Criterion) {
    let mut g = c.benchmark_group("peak_fma");
    const ITERS: u64 = 100_000;
    for isa in isas_to_bench() {
        if peak::fma_loop(isa, 1).is_none() {
            continue;
        }
        g.throughput(Throughput::Elements(peak::flops(isa, ITERS)));
        g.bench_function(isa.name(), |b| {
            b.iter(|| peak::fma_loop(isa, black_box(ITERS)))
        });
    }
    g.finish();
}

fn bench_dwconv(c: &mut Criterion) {
    for stride in [1, 2] {
        let mut g = c.benchmark_group(format!("dwconv3x3_s{stride}"));
        for (s, hw, ch) in shapes::dwconv_shapes() {
            if s != stride {
                continue;
            }
            let geom = DwConv3x3Geom {
                n: 1,
                h: hw,
                w: hw,
                c: ch,
                stride,
                act: Activation::Identity,
            };
            let mut input = aligned_zeros(hw * hw * ch);
            input
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = ((i % 17) as f32 - 8.0) * 0.125);
            let weights: Vec<f32> = (0..9 * ch).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
            let bias = vec![0.01; ch];
            let mut out = aligned_zeros(geom.output_shape().len());
            g.throughput(Throughput::Elements(2 * geom.macs()));
            for isa in isas_to_bench() {
                let Ok(entry) = registry::find(Op::DwConv3x3, isa) else {
                    continue;
                };
                let k = entry.dwconv3x3().expect("a depthwise entry");
                g.bench_with_input(
                    BenchmarkId::new(isa.name(), format!("{hw}x{hw}x{ch}")),
                    &geom,
                    |b, geom| {
                        b.iter(|| {
                            k.run(geom, &input, &weights, &bias, &mut out, None)
                                .expect("valid shapes")
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

/// Every pointwise shape of M0.9 to M2.3 on every ISA at one thread, and on the widest ISA at two
/// threads (group `pointwise_t2`; the report compares it with twice the one-core peak). Epilogue as in
/// RepViT's first channel-mixer convolution: bias and GELU.
fn bench_pointwise(c: &mut Criterion) {
    let isas = isas_to_bench();
    let widest = *isas.last().expect("at least one ISA");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, 2] {
        if threads > cores {
            continue;
        }
        let mut g = c.benchmark_group(format!("pointwise_t{threads}"));
        for (p, k, n) in shapes::pointwise_shapes() {
            let input = {
                let mut v = aligned_zeros(p * k);
                v.iter_mut()
                    .enumerate()
                    .for_each(|(i, x)| *x = ((i % 13) as f32 - 6.0) * 0.05);
                v
            };
            let w: Vec<f32> = (0..n * k).map(|i| ((i % 11) as f32 - 5.0) * 0.02).collect();
            let bias = vec![0.1; n];
            let mut out = aligned_zeros(p * n);
            g.throughput(Throughput::Elements(2 * (p * k * n) as u64));
            for &isa in &isas {
                if threads > 1 && isa != widest {
                    continue;
                }
                let Ok(packed) = PackedPointwise::pack(isa, k, n, &w, Some(&bias)) else {
                    continue;
                };
                let ks = Kernels::with_isa(isa)
                    .and_then(|ks| ks.with_threads(threads))
                    .expect("available ISA");
                g.bench_function(BenchmarkId::new(isa.name(), format!("{p}x{k}x{n}")), |b| {
                    b.iter(|| {
                        packed
                            .run_slices(&ks, p, &input, &mut out, Activation::Gelu, None)
                            .expect("valid shapes")
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_peak, bench_dwconv, bench_pointwise
}
criterion_main!(benches);
