//! Kernel benchmarks: the peak-FMA probe per ISA, every depthwise 3x3 shape of RepViT and the 5x5 /
//! 7x7 shapes of MobileNetV3 and EfficientNet-like networks per ISA (one thread) and every pointwise shape (one and two threads). Throughput is counted in floating-point operations (a multiply-add counts 2), so
//! criterion's "elem/s" reads as FLOP/s; `cargo run --release -p bench-suite --bin report` turns the
//! results into GFLOP/s and percent of the peak measured in the same run.

use std::hint::black_box;

use bench_suite::{criterion_config, isas_to_bench, peak, shapes};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mobile_cnn_kernels::registry::{self, Op};
use mobile_cnn_kernels::se::{Gate, SqueezeExcite};
use mobile_cnn_kernels::tensor::aligned_zeros;
use mobile_cnn_kernels::{
    Activation, Conv3x3, DwConvGeom, Isa, Kernels, PackedPointwise, Precision, Shape, Tensor,
};
use repvit::families::widths::make_divisible;

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
    // The bf16 dot-product peak, named like the bf16 pointwise benchmarks (`avx512_bf16`) so the
    // report quotes them as a percent of it.
    if peak::bf16_dot_loop(1).is_some() {
        g.throughput(Throughput::Elements(peak::bf16_flops(ITERS)));
        g.bench_function("avx512_bf16", |b| {
            b.iter(|| peak::bf16_dot_loop(black_box(ITERS)))
        });
    }
    g.finish();
}

/// Depthwise shapes `(k, stride, input h = w, channels)`: every 3x3 shape of RepViT, the 5x5 shapes of
/// MobileNetV3-Large and -Small (timm `mobilenetv3_large_100` / `_small_100`: the expanded widths
/// of the k5 stages, C >= 40) and 7x7 at the stage widths of a ConvNeXt-T-like / EfficientNet-like
/// network (96 to 768 channels at 56 to 7 pixels).
fn dwconv_bench_shapes() -> Vec<(usize, usize, usize, usize)> {
    let mut v: Vec<_> = shapes::dwconv_shapes()
        .into_iter()
        .map(|(s, hw, c)| (3, s, hw, c))
        .collect();
    // MobileNetV3-Large: s2 56 -> 28 at 72, s1 28 at 120, s2 14 -> 7 at 672, s1 7 at 960.
    // MobileNetV3-Small: s2 28 -> 14 at 96, s1 14 at 240, 120, 144, s2 14 -> 7 at 288, s1 7 at 576.
    for (s, hw, c) in [
        (1, 28, 120),
        (1, 14, 240),
        (1, 14, 120),
        (1, 14, 144),
        (1, 7, 960),
        (1, 7, 576),
        (2, 56, 72),
        (2, 28, 96),
        (2, 14, 672),
        (2, 14, 288),
    ] {
        v.push((5, s, hw, c));
    }
    for (hw, c) in [(56, 96), (28, 192), (14, 384), (7, 768)] {
        v.push((7, 1, hw, c));
    }
    v
}

/// Every depthwise shape above on every ISA, one thread, one group per kernel size and stride
/// (`dwconv5x5_s1`, ...). FLOPs count `k * k` multiply-adds per output, padding taps included.
fn bench_dwconv(c: &mut Criterion) {
    let shapes = dwconv_bench_shapes();
    for k in [3, 5, 7] {
        for stride in [1, 2] {
            let these: Vec<_> = shapes
                .iter()
                .filter(|&&(kk, s, _, _)| kk == k && s == stride)
                .collect();
            if these.is_empty() {
                continue;
            }
            let mut g = c.benchmark_group(format!("dwconv{k}x{k}_s{stride}"));
            for &&(_, _, hw, ch) in &these {
                let geom = DwConvGeom {
                    n: 1,
                    h: hw,
                    w: hw,
                    c: ch,
                    k,
                    stride,
                    act: Activation::Identity,
                };
                let mut input = aligned_zeros(hw * hw * ch);
                input
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = ((i % 17) as f32 - 8.0) * 0.125);
                let weights: Vec<f32> = (0..k * k * ch)
                    .map(|i| ((i % 7) as f32 - 3.0) * 0.1)
                    .collect();
                let bias = vec![0.01; ch];
                let mut out = aligned_zeros(geom.output_shape().len());
                g.throughput(Throughput::Elements(2 * geom.macs()));
                for isa in isas_to_bench() {
                    let Ok(entry) = registry::find(Op::DwConv { k }, isa) else {
                        continue;
                    };
                    let kernel = entry.dwconv().expect("a depthwise entry");
                    g.bench_with_input(
                        BenchmarkId::new(isa.name(), format!("{hw}x{hw}x{ch}")),
                        &geom,
                        |b, geom| {
                            b.iter(|| {
                                kernel
                                    .run(geom, &input, &weights, &bias, &mut out, None)
                                    .expect("valid shapes")
                            })
                        },
                    );
                }
            }
            g.finish();
        }
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
                let ks = Kernels::with_isa(isa)
                    .and_then(|ks| ks.with_threads(threads))
                    .expect("available ISA");
                // Every pointwise entry of this tier that the CPU runs (f32, and bf16 where the
                // tier has it), named `isa` or `isa_precision`.
                for entry in registry::for_op(Op::Pointwise)
                    .filter(|e| e.isa == isa && e.is_available())
                    // The scalar bf16 entry is the portable model, not a fast path.
                    .filter(|e| e.dtype() == Precision::F32 || e.isa != Isa::Scalar)
                {
                    let Ok(packed) = PackedPointwise::pack_for(entry, k, n, &w, Some(&bias)) else {
                        continue;
                    };
                    let name = match entry.dtype() {
                        Precision::F32 => isa.name().to_string(),
                        d => format!("{isa}_{d}"),
                    };
                    g.bench_function(BenchmarkId::new(name, format!("{p}x{k}x{n}")), |b| {
                        b.iter(|| {
                            packed
                                .run_slices(&ks, p, &input, &mut out, Activation::Gelu, None)
                                .expect("valid shapes")
                        })
                    });
                }
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
/// split (the per-layer rule at `Network::exec` in the model crate).
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

/// The memory-bound ops of `elementwise` (one thread, per ISA): the residual add, the SE channel
/// scale, the per-channel sums and the global average pool, on NHWC maps of RepViT and
/// MobileNetV3 (`HxWxC`). Throughput is in bytes read and written, so criterion's rate reads as
/// memory bandwidth.
fn bench_memory_bound(c: &mut Criterion) {
    use mobile_cnn_kernels::elementwise::Elementwise;
    let mut g = c.benchmark_group("memory_bound_t1");
    for (hw, ch) in [(56, 56), (28, 40), (14, 224), (7, 960)] {
        let shape = Shape::new(1, hw, hw, ch);
        let len = shape.len();
        let src: Vec<f32> = (0..len).map(|i| (i % 13) as f32 * 0.1).collect();
        let scale: Vec<f32> = (0..ch)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        for isa in isas_to_bench() {
            let k = Kernels::with_isa(isa)
                .and_then(|k| k.with_threads(1))
                .expect("available ISA");
            let ew = Elementwise::new(&k).expect("available ISA");
            let mut t = Tensor::from_slice(shape, &src).expect("shape");
            let mut out = vec![0.0; ch];
            let id = |op: &str| {
                BenchmarkId::new(format!("{op}/{}", isa.name()), format!("{hw}x{hw}x{ch}"))
            };
            g.throughput(Throughput::Bytes(3 * 4 * len as u64));
            g.bench_function(id("add"), |b| {
                b.iter(|| {
                    ew.add_in_place(t.as_mut_slice(), black_box(&src))
                        .expect("same length")
                })
            });
            g.throughput(Throughput::Bytes(2 * 4 * len as u64));
            g.bench_function(id("scale_channels"), |b| {
                b.iter(|| {
                    ew.scale_channels_in_place(&k, &mut t, black_box(&scale))
                        .expect("[n, c]")
                })
            });
            g.throughput(Throughput::Bytes(4 * len as u64));
            g.bench_function(id("channel_sums"), |b| {
                b.iter(|| ew.channel_sums(black_box(&t), &mut out).expect("[n, c]"))
            });
            g.bench_function(id("global_avg_pool"), |b| {
                b.iter(|| ew.global_avg_pool(black_box(&t), &mut out).expect("[n, c]"))
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_peak, bench_dwconv, bench_pointwise, bench_stem, bench_se, bench_pool,
        bench_memory_bound
}
criterion_main!(benches);
