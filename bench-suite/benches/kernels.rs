//! Kernel benchmarks: the peak-FMA probe per ISA, every depthwise 3x3 shape of RepViT per ISA (one
//! thread) and every pointwise shape (one and two threads). Throughput is counted in floating-point operations (a multiply-add counts 2), so
//! criterion's "elem/s" reads as FLOP/s; `cargo run --release -p bench-suite --bin report` turns the
//! results into GFLOP/s and percent of the peak measured in the same run.

use std::hint::black_box;

use bench_suite::{criterion_config, isas_to_bench, peak, shapes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mobile_cnn_kernels::registry::{self, Op};
use mobile_cnn_kernels::se::{Gate, SqueezeExcite, make_divisible};
use mobile_cnn_kernels::tensor::aligned_zeros;
use mobile_cnn_kernels::{
    Activation, Conv3x3, DwConv3x3Geom, Kernels, PackedPointwise, Shape, Tensor,
};

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

/// RepViT's two stem convolutions (3 -> C/2 at 224x224, C/2 -> C at 112x112, both stride 2), for
/// C of every variant family, one thread, and M1.0's (C = 56) on two threads (widest ISA only);
/// multiply-adds counted over the im2col taps.
fn bench_stem(c: &mut Criterion) {
    bench_stem_threads(c, 1, &[48, 56, 64, 80]);
    bench_stem_threads(c, 2, &[56]);
}

fn bench_stem_threads(c: &mut Criterion, threads: usize, widths: &[usize]) {
    let mut g = c.benchmark_group(format!("stem_conv3x3_t{threads}"));
    for &c0 in widths {
        for (hw, cin, cout) in [(224, 3, c0 / 2), (112, c0 / 2, c0)] {
            let input = Tensor::from_slice(
                Shape::new(1, hw, hw, cin),
                &(0..hw * hw * cin)
                    .map(|i| ((i % 9) as f32 - 4.0) * 0.1)
                    .collect::<Vec<_>>(),
            )
            .expect("valid shape");
            let w: Vec<f32> = (0..cout * cin * 9)
                .map(|i| ((i % 5) as f32 - 2.0) * 0.05)
                .collect();
            for isa in isas_to_bench() {
                if threads > 1 && isa != mobile_cnn_kernels::Isa::best() {
                    continue;
                }
                let Ok(conv) = Conv3x3::new(
                    isa,
                    cin,
                    cout,
                    &w,
                    Some(&vec![0.0; cout]),
                    2,
                    Activation::Gelu,
                ) else {
                    continue;
                };
                let ks = Kernels::with_isa(isa)
                    .and_then(|k| k.with_threads(threads))
                    .expect("available ISA");
                let mut out =
                    Tensor::zeros(conv.output_shape(input.shape()).expect("shape")).expect("shape");
                let mut scratch = Vec::new();
                g.throughput(Throughput::Elements(
                    2 * conv.macs(input.shape()).expect("shape"),
                ));
                g.bench_function(
                    BenchmarkId::new(isa.name(), format!("{hw}x{hw}x{cin}to{cout}")),
                    |b| {
                        b.iter(|| {
                            conv.run(&ks, &input, &mut out, &mut scratch)
                                .expect("valid shapes")
                        })
                    },
                );
            }
        }
    }
    g.finish();
}

/// Squeeze-excite gate from fused depthwise sums (the path RepViT uses), every stage width of M1.0,
/// one thread. Compare with the same block's pointwise convolutions in `pointwise_t1`.
fn bench_se(c: &mut Criterion) {
    let mut g = c.benchmark_group("se_gate_t1");
    for (hw, ch) in [(56, 56), (28, 112), (14, 224), (7, 448)] {
        let r = make_divisible(ch as f64 * 0.25, 8);
        let w1 = vec![0.01; r * ch];
        let w2 = vec![0.01; ch * r];
        let sums = vec![1.0; ch];
        for isa in isas_to_bench() {
            let Ok(se) = SqueezeExcite::new(
                isa,
                ch,
                r,
                &w1,
                &vec![0.0; r],
                &w2,
                &vec![0.0; ch],
                Activation::Relu,
                Gate::Sigmoid,
            ) else {
                continue;
            };
            let ks = Kernels::with_isa(isa)
                .and_then(|k| k.with_threads(1))
                .expect("available ISA");
            let mut scale = vec![0.0; ch];
            let mut scratch = Vec::new();
            g.throughput(Throughput::Elements(2 * 2 * (ch * r) as u64));
            g.bench_function(
                BenchmarkId::new(isa.name(), format!("{hw}x{hw}x{ch}")),
                |b| {
                    b.iter(|| {
                        se.scale_from_sums(&ks, &sums, hw * hw, &mut scale, &mut scratch)
                            .expect("valid shapes")
                    })
                },
            );
        }
    }
    g.finish();
}

/// The fixed cost of one parallel call of the thread pool (`Kernels::for_each_index`): waking the
/// workers, handing out the blocks and waiting for the last, with empty blocks, at 1 to 4 threads
/// (1 is the serial path, no pool). `blocks_1x` gives each thread one block, `blocks_4x` four, as
/// the pointwise split does. A layer whose work per thread is not well above this cost should not be
/// split (see `MIN_PARALLEL_FLOPS` in the model crate).
fn bench_pool(c: &mut Criterion) {
    let mut g = c.benchmark_group("pool_overhead");
    for threads in 1..=4 {
        let k = Kernels::new()
            .and_then(|k| k.with_threads(threads))
            .expect("threads");
        for per_thread in [1, 4] {
            g.bench_function(
                BenchmarkId::new(
                    format!("threads_{threads}"),
                    format!("blocks_{per_thread}x"),
                ),
                |b| {
                    b.iter(|| {
                        k.for_each_index(per_thread * threads, |slot, i| {
                            black_box((slot, i));
                        })
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_peak, bench_dwconv, bench_pointwise, bench_stem, bench_se, bench_pool
}
criterion_main!(benches);
