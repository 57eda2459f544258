//! Network benchmarks through the model's own code path, random weights, batch 1, each model at its
//! timm pretrained input size (224x224; MobileNetV4-M 256x256, -L 384x384), on the widest ISA (or
//! `KERNELS_ISA`), for every model of `repvit::all_names` (every RepViT variant, the MobileNets,
//! EfficientNets and MobileNetV4s; one runner for all):
//! - `model_e2e_t1` and `model_e2e_t<cores>`: a whole forward pass of every variant at one thread
//!   and at all threads;
//! - `layers_<variant>_t1`: every distinct layer configuration of each variant (one kernel call of
//!   the model's step list, on a workspace holding a real forward pass's activations), one thread.
//!
//! Benchmark ids are `<group>/<isa>/<variant or layer key>`; throughput is counted in FLOPs (a
//! multiply-add counts 2), so `cargo run --release -p bench-suite --bin report` can turn the medians
//! into GFLOP/s and percent of the peak measured by the kernels bench in the same run.

use std::time::Duration;

use bench_suite::{isas_to_bench, quick};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mobile_cnn_kernels::Kernels;
use repvit::all_names;
use repvit::distinct_layers;
use repvit::{Arch, LayerBench, Network};

fn bench_model(c: &mut Criterion) {
    let isa = *isas_to_bench().last().expect("at least one ISA");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (e2e_warm, e2e_meas, layer_warm, layer_meas) = if quick() {
        (0.2, 0.6, 0.05, 0.12)
    } else {
        (0.5, 2.0, 0.1, 0.3)
    };
    for name in all_names() {
        let name = name.as_str();
        let k1 = Kernels::with_isa(isa)
            .and_then(|k| k.with_threads(1))
            .expect("available ISA");
        let arch = Arch::named(name).expect("registered name");
        let side = arch.input_size();
        let shape = [1, 3, side, side];
        let input: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let model = Network::random_arch(arch, 1, &k1).expect("valid variant");
        let layers = model.layers(shape).expect("valid shape");
        let flops: u64 = layers.iter().map(|l| l.flops).sum();
        let mut out = vec![0.0; model.num_classes()];

        // Per layer, one thread: each distinct configuration once. The workspace (which holds a
        // real forward pass's activations) is made by the first of these benchmarks that runs, so
        // a filter that selects none of them (`cargo bench -- m0_9`) costs no forward pass here:
        // under qemu (scripts/bench-aarch64.sh) the other variants' passes took minutes.
        {
            let mut lb: Option<LayerBench> = None;
            let mut g = c.benchmark_group(format!("layers_{name}_t1"));
            g.warm_up_time(Duration::from_secs_f64(layer_warm))
                .measurement_time(Duration::from_secs_f64(layer_meas))
                .sample_size(10);
            for d in distinct_layers(&layers) {
                let l = &layers[d.index];
                g.throughput(Throughput::Elements(l.flops));
                g.bench_function(BenchmarkId::new(isa.name(), &l.key), |b| {
                    let lb =
                        lb.get_or_insert_with(|| model.layer_bench(shape).expect("valid shape"));
                    b.iter(|| lb.run_layer(d.index).expect("valid step"))
                });
            }
            g.finish();
        }

        let mut e2e = |c: &mut Criterion, model: &Network, threads: usize| {
            let mut g = c.benchmark_group(format!("model_e2e_t{threads}"));
            g.sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_secs_f64(e2e_warm))
                .measurement_time(Duration::from_secs_f64(e2e_meas))
                .sample_size(10)
                .throughput(Throughput::Elements(flops));
            g.bench_function(BenchmarkId::new(isa.name(), name), |b| {
                b.iter(|| {
                    model
                        .forward_into(&input, shape, &mut out)
                        .expect("valid input")
                })
            });
            g.finish();
        };
        e2e(c, &model, 1);
        if cores > 1 {
            let model = model.with_threads(cores).expect("thread count");
            e2e(c, &model, cores);
        }
    }
}

criterion_group! {
    name = benches;
    config = bench_suite::criterion_config();
    targets = bench_model
}
criterion_main!(benches);
