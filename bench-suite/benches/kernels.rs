//! Kernel benchmarks: the peak-FMA probe per ISA and every depthwise 3x3 shape of RepViT per ISA,
//! one thread. Throughput is counted in floating-point operations (a multiply-add counts 2), so
//! criterion's "elem/s" reads as FLOP/s; `cargo run --release -p bench-suite --bin report` turns the
//! results into GFLOP/s and percent of the peak measured in the same run.

use std::hint::black_box;

use bench_suite::{criterion_config, isas_to_bench, peak, shapes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mobile_cnn_kernels::registry::{self, Op};
use mobile_cnn_kernels::tensor::aligned_zeros;
use mobile_cnn_kernels::{Activation, DwConv3x3Geom};

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

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_peak, bench_dwconv
}
criterion_main!(benches);
