//! `repvit`: run RepViT, MobileNetV3 (`mobilenetv3_large_100`, `mobilenetv3_small_100`) and
//! MobileNetV2 (`mobilenetv2_100`) on `.npy` batches or images and measure latency. Every family
//! runs on the same [`Network`], so one command serves them all; it keeps the name `repvit` because
//! the scripts, tests and README already call it. The family comes from the checkpoint's tensors,
//! or from `--variant` (timm's name); `classify` applies the family's own eval transform.
//!
//! ```text
//! repvit infer --weights model.safetensors [--variant m1_0] --input x.npy --output logits.npy [--features 0,1,2,3] [--threads N]
//! repvit classify --weights model.safetensors [--variant m1_0] [--threads N] [--top K] [--allow-truncated] IMAGE...
//! repvit bench [--variant m1_0|all] [--weights FILE] [--threads N] [--iters N] [--batch N] [--batch-split images|layers] [--isa NAME] [--json] [--no-layers]
//! repvit bench [--variant m1_0|all] --layers-at 1,2 [--iters N] [--batch N] ...
//! ```
//!
//! `--layers-at 1,2` times the model at one and at two threads in alternating rounds and prints one
//! per-layer table: every step's median ms at each count and the speed-up of the last count over
//! the first, then per-kind totals and the end-to-end medians.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use mobile_cnn_kernels::{Isa, Kernels, Precision};
use repvit::all_names;
use repvit::plan::try_zeroed;
use repvit::preprocess::{imagenet_class, top_k};
use repvit::{Arch, BatchSplit, Error, LayerInfo, Network, bench_input, cores, npy};

/// Every instruction-set tier's name, as `--isa` and `KERNELS_ISA` take them.
fn isa_names() -> String {
    Isa::ALL.map(Isa::name).join(", ")
}

fn cli() -> Command {
    let threads = Arg::new("threads")
        .long("threads")
        .value_parser(value_parser!(usize))
        .help("worker threads (default: all cores)");
    let isa = Arg::new("isa").long("isa").help(format!(
        "instruction set: {} (default: KERNELS_ISA or the widest)",
        isa_names()
    ));
    let precision = Arg::new("precision").long("precision").help(
        "f32, bf16 or f16 for the pointwise layers (default: KERNELS_PRECISION or f32); \
         an error if the instruction set lacks it on this CPU",
    );
    let variant = |help: &'static str| Arg::new("variant").long("variant").help(help);
    Command::new("repvit")
        .about("RepViT, MobileNetV3 and MobileNetV2 inference on mobile-cnn-kernels")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("infer")
                .about("logits (or pooled features, or stage feature maps) of an NCHW .npy batch")
                .arg(
                    Arg::new("weights")
                        .long("weights")
                        .required(true)
                        .help(WEIGHTS_HELP),
                )
                .arg(variant(
                    "architecture (m1_0, repvit_m1_0, mobilenetv3_large_100, mobilenetv3_small_100, mobilenetv2_100); detected from the checkpoint when absent",
                ))
                .arg(Arg::new("input").long("input").required(true).help(
                    ".npy of shape [N, 3, H, W], any H, W >= 1: float32, float64 or \
                             float16, either byte order, C or Fortran order (converted to float32, \
                             with a note on stderr)",
                ))
                .arg(Arg::new("output").long("output").required(true).help(
                    "float32 .npy to write: logits [N, classes], or for a headless \
                             checkpoint (num_classes=0) what timm's model returns: the pooled \
                             features [N, C_last] (RepViT), the pooled conv_head features \
                             [N, 1280] (MobileNetV3-Large, V2; 1024 for V3-Small)",
                ))
                .arg(
                    Arg::new("features")
                        .long("features")
                        .value_name("STAGES")
                        .value_delimiter(',')
                        .value_parser(value_parser!(usize))
                        .help(
                            "instead of logits, write the feature maps of these stages \
                             (comma-separated, 0-based, like timm's out_indices; timm's \
                             features_only=True stages): one float32 NCHW .npy per stage, \
                             [N, C_i, ceil(H / r_i), ceil(W / r_i)] with stride r_i = 4, 8, 16, 32 \
                             for RepViT's stages 0..3 and 2, 4, 8, 16, 32 for the MobileNets' \
                             stages 0..4, named after --output: `feats.npy` gives \
                             `feats_stage0.npy`, `feats_stage2.npy`, ...",
                        ),
                )
                .arg(threads.clone())
                .arg(isa.clone())
                .arg(precision.clone()),
        )
        .subcommand(classify_cmd(
            threads.clone(),
            isa.clone(),
            precision.clone(),
        ))
        .subcommand(
            Command::new("bench")
                .about("latency per variant (random weights unless --weights): median and min")
                .arg(variant("architecture (m1_0, mobilenetv3_large_100, ...) or `all` (every RepViT, MobileNet, EfficientNet and MobileNetV4; default: m1_0)").default_value("m1_0"))
                .arg(
                    Arg::new("weights")
                        .long("weights")
                        .help("timm model.safetensors instead of random weights"),
                )
                .arg(threads)
                .arg(isa)
                .arg(precision)
                .arg(
                    Arg::new("iters")
                        .long("iters")
                        .value_parser(value_parser!(usize))
                        .default_value("50")
                        .help("timed iterations"),
                )
                .arg(
                    Arg::new("batch")
                        .long("batch")
                        .value_parser(value_parser!(usize))
                        .default_value("1")
                        .help("images per call"),
                )
                .arg(
                    Arg::new("batch-split")
                        .long("batch-split")
                        .value_parser(["images", "layers"])
                        .default_value("images")
                        .help(
                            "batch > 1 on several threads: one group of images per thread \
                             (images) or every layer split across the threads (layers)",
                        ),
                )
                .arg(
                    Arg::new("size")
                        .long("size")
                        .value_parser(value_parser!(usize))
                        .help("image height and width (default: each model's timm pretrained size, 224; MobileNetV4-M 256, -L 384)"),
                )
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("one JSON object per line"),
                )
                .arg(
                    Arg::new("layers-at")
                        .long("layers-at")
                        .value_parser(value_parser!(usize))
                        .value_delimiter(',')
                        .num_args(1)
                        .help(
                            "thread counts, e.g. 1,2: time the model at each (interleaved, \
                             --iters passes each) and print one per-layer table with every \
                             count's median ms side by side and the speed-up of the last count \
                             over the first; instead of --threads",
                        ),
                )
                .arg(
                    Arg::new("no-layers")
                        .long("no-layers")
                        .action(ArgAction::SetTrue)
                        .help(
                            "skip the per-layer breakdown (profiled passes after the timed ones)",
                        ),
                ),
        )
}

fn kernels(m: &ArgMatches) -> Result<Kernels, Error> {
    let ctx = |source| Error::Kernel {
        layer: "kernels".into(),
        source,
    };
    let k = match m.get_one::<String>("isa") {
        Some(name) => {
            let isa = Isa::from_name(name).ok_or_else(|| Error::Input {
                what: "--isa".into(),
                expected: format!("one of {}", isa_names()),
                found: format!("`{name}`"),
            })?;
            Kernels::with_isa(isa).map_err(ctx)?
        }
        None => Kernels::new().map_err(ctx)?,
    };
    let k = match m.get_one::<String>("precision") {
        Some(name) => {
            let p = Precision::from_name(name).ok_or_else(|| Error::Input {
                what: "--precision".into(),
                expected: "one of f32, bf16, f16".into(),
                found: format!("`{name}`"),
            })?;
            k.with_precision(p).map_err(ctx)?
        }
        None => k,
    };
    match m.get_one::<usize>("threads") {
        Some(&t) => k.with_threads(t).map_err(ctx),
        None => Ok(k),
    }
}

/// The checkpoint kinds `--weights` accepts.
const WEIGHTS_HELP: &str = "safetensors checkpoint of RepViT, MobileNetV3 or MobileNetV2: \
    timm's model.safetensors or a state_dict saved with safetensors (keys optionally under a \
    wrapper prefix such as `module.`, `model.` or `state_dict.`); f32, f16 or bf16 tensors; \
    with a classifier or headless (num_classes=0). RepViT: timm's names or the official \
    repository's, trained (BatchNorm) or deployed (after timm's fuse() or the official \
    replace_batchnorm). MobileNets: timm's names, trained (BatchNorm folded at load). Family and \
    variant are detected from the shapes";

fn classify_cmd(threads: Arg, isa: Arg, precision: Arg) -> Command {
    Command::new("classify")
        .about("top-K ImageNet-1k classes of JPEG/PNG images (timm's eval preprocessing)")
        .after_help(
            "16-bit PNGs are reduced to 8 bits by rounding (round(v / 257), the image crate's \
             conversion), which keeps the picture. PIL (and so timm's scripts) keeps the high byte \
             (v >> 8) of 16-bit RGB(A), at most one level from ours, and clips 16-bit greyscale \
             to 255, turning nearly every pixel white; results on such PNGs may differ from \
             timm's on purpose. Truncated JPEGs (no end-of-image marker; PIL: \"image file is \
             truncated\") are refused unless --allow-truncated is given.",
        )
        .arg(
            Arg::new("weights")
                .long("weights")
                .required(true)
                .help(WEIGHTS_HELP),
        )
        .arg(
            Arg::new("variant")
                .long("variant")
                .help("architecture (m1_0, repvit_m1_0, mobilenetv3_large_100, mobilenetv3_small_100, mobilenetv2_100, efficientnet_b0, efficientnet_lite0, mobilenetv4_conv_small, mobilenetv4_conv_small_035, mobilenetv4_conv_small_050, mobilenetv4_conv_medium, mobilenetv4_conv_large); detected from the checkpoint when absent"),
        )
        .arg(threads)
        .arg(isa)
        .arg(precision)
        .arg(
            Arg::new("top")
                .long("top")
                .value_parser(value_parser!(usize))
                .default_value("5")
                .help("classes printed per image"),
        )
        .arg(
            Arg::new("allow-truncated")
                .long("allow-truncated")
                .action(ArgAction::SetTrue)
                .help("accept JPEGs cut off before their end (the decoder fills the rest)"),
        )
        .arg(
            Arg::new("images")
                .value_name("IMAGE")
                .required(true)
                .num_args(1..)
                .help("JPEG or PNG files, classified in one batch"),
        )
}

/// Decodes, resizes and crops every image as timm's eval transform does, runs them as one batch
/// and prints the top-K classes with their softmax probabilities.
fn classify(m: &ArgMatches) -> Result<(), Error> {
    let k = kernels(m)?;
    let weights = m
        .get_one::<String>("weights")
        .map(String::as_str)
        .unwrap_or_default();
    let images: Vec<&String> = m
        .get_many::<String>("images")
        .into_iter()
        .flatten()
        .collect();
    let top = *m.get_one::<usize>("top").unwrap_or(&5);
    let model = Network::load(
        weights,
        m.get_one::<String>("variant").map(String::as_str),
        &k,
    )?;
    // The eval transform of the network's family (crop_pct 0.95 for RepViT, 0.875 for the
    // MobileNets), so the model is loaded before the images are read.
    let (x, shape) = model
        .arch()
        .eval_transform()
        .batch_with(&images, m.get_flag("allow-truncated"))?;
    let classes = model.num_classes();
    if classes == 0 {
        return Err(Error::Input {
            what: weights.to_string(),
            expected: "a checkpoint with a classifier head for `classify`".into(),
            found: "a headless checkpoint (num_classes=0); `repvit infer` writes its features"
                .into(),
        });
    }
    let logits = model.forward(&x, shape)?;
    for (path, row) in images.iter().zip(logits.chunks_exact(classes)) {
        println!("{path}");
        for (rank, (i, p)) in top_k(row, top).into_iter().enumerate() {
            let name = if classes == 1000 {
                imagenet_class(i).unwrap_or("?")
            } else {
                "?"
            };
            println!("  {:>2}. {:>8.4} %  {i:>4}  {name}", rank + 1, 100.0 * p);
        }
    }
    Ok(())
}

fn infer(m: &ArgMatches) -> Result<(), Error> {
    let k = kernels(m)?;
    let weights = m
        .get_one::<String>("weights")
        .map(String::as_str)
        .unwrap_or_default();
    let model = Network::load(
        weights,
        m.get_one::<String>("variant").map(String::as_str),
        &k,
    )?;
    let input_path = m
        .get_one::<String>("input")
        .map(String::as_str)
        .unwrap_or_default();
    let (x, note) = npy::read_converting(input_path)?;
    if let Some(note) = note {
        eprintln!("note: {input_path}: {note}");
    }
    let shape: [usize; 4] = x.shape.clone().try_into().map_err(|_| Error::Input {
        what: input_path.to_string(),
        expected: format!("a 4-D NCHW array [N, {}, H, W]", model.in_chans()),
        found: format!("shape {:?}", x.shape),
    })?;
    let out = m
        .get_one::<String>("output")
        .map(String::as_str)
        .unwrap_or_default();
    let t0 = Instant::now();
    let written: Vec<(String, Vec<usize>)> = match m.get_many::<usize>("features") {
        Some(stages) => {
            let stages: Vec<usize> = stages.copied().collect();
            let maps = model.forward_features(&x.data, shape, &stages)?;
            let mut written = Vec::new();
            for f in maps {
                let path = stage_path(out, f.stage);
                npy::write(&path, &f.shape, &f.data)?;
                written.push((path, f.shape.to_vec()));
            }
            written
        }
        None => {
            let logits = model.forward(&x.data, shape)?;
            let dims = vec![shape[0], model.num_outputs()];
            npy::write(out, &dims, &logits)?;
            vec![(out.to_string(), dims)]
        }
    };
    let dt = t0.elapsed();
    let files: Vec<String> = written.iter().map(|(p, s)| format!("{p} {s:?}")).collect();
    eprintln!(
        "{}: {} image(s) {}x{} -> {} in {:.2} ms ({}, {}, {} threads)",
        model.arch(),
        shape[0],
        shape[2],
        shape[3],
        files.join(", "),
        dt.as_secs_f64() * 1e3,
        k.isa(),
        k.precision(),
        k.threads()
    );
    Ok(())
}

/// `feats.npy` -> `feats_stage2.npy` (the stem of `out`, `_stage<i>`, `.npy`).
fn stage_path(out: &str, stage: usize) -> String {
    let stem = out.strip_suffix(".npy").unwrap_or(out);
    format!("{stem}_stage{stage}.npy")
}

/// Above this `cores::core_sharing` slowdown the two threads are taken to share one core (two
/// cores read about 1.0, two hardware threads of one core about 2).
const SHARED_CORE: f64 = 1.4;

/// The value of `--<name>` (default `default`), refused when 0: zero timed iterations or images
/// would time nothing, and silently running one instead would report a run nobody asked for.
fn at_least_one(m: &ArgMatches, name: &str, default: usize) -> Result<usize, Error> {
    match m.get_one::<usize>(name).copied().unwrap_or(default) {
        0 => Err(Error::Input {
            what: format!("--{name}"),
            expected: "an integer >= 1".into(),
            found: "0".into(),
        }),
        v => Ok(v),
    }
}

/// The logits of one batch of `shape` for `model`, allocated fallibly (an error, never an abort).
fn logits_buffer(model: &Network, shape: [usize; 4]) -> Result<Vec<f32>, Error> {
    let len = shape[0].saturating_mul(model.num_outputs());
    try_zeroed("logits", len, shape)
}

fn bench(m: &ArgMatches) -> Result<(), Error> {
    let k = kernels(m)?;
    let iters = at_least_one(m, "iters", 50)?;
    let batch = at_least_one(m, "batch", 1)?;
    let size = m.get_one::<usize>("size").map(|s| (*s).max(1));
    // Each model's input: `--size`, else its eval transform's side.
    let shape_of = |model: &Network| {
        let side = size.unwrap_or_else(|| model.arch().input_size());
        [batch, 3, side, side]
    };
    let json = m.get_flag("json");
    let name = m
        .get_one::<String>("variant")
        .map(String::as_str)
        .unwrap_or("m1_0");
    let make = |k: &Kernels| -> Result<Vec<Network>, Error> {
        Ok(match m.get_one::<String>("weights") {
            Some(w) => vec![Network::load(w, Some(name).filter(|n| *n != "all"), k)?],
            None if name == "all" => all_names()
                .iter()
                .map(|n| Network::random_arch(Arch::named(n)?, 1, k))
                .collect::<Result<_, _>>()?,
            None => vec![Network::random_arch(Arch::named(name)?, 1, k)?],
        })
    };
    let split = match m.get_one::<String>("batch-split").map(String::as_str) {
        Some("layers") => BatchSplit::Layers,
        _ => BatchSplit::Images,
    };
    if let Some(counts) = m.get_many::<usize>("layers-at") {
        let counts: Vec<usize> = counts.copied().collect();
        return layers_at(&k, &counts, &make, split, &shape_of, iters);
    }
    let models = make(&k)?;
    let models: Vec<Network> = models
        .into_iter()
        .map(|m| m.with_batch_split(split))
        .collect();
    let split_name = match split {
        BatchSplit::Layers => "layers",
        BatchSplit::Images => "images",
    };
    for model in &models {
        let shape = shape_of(model);
        let size = shape[2];
        let x = bench_input(shape)?;
        let mut out = logits_buffer(model, shape)?;
        // Warm-up: allocates the workspace, faults pages in, settles clocks.
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < 0.3 {
            model.forward_into(&x, shape, &mut out)?;
        }
        // How far apart the pool's cores are, just before and just after the timed passes (see
        // `cores::core_round_trip`): on a VM the two-thread figures depend on it.
        let rtt_before = cores::core_round_trip(&k);
        let sharing_before = cores::core_sharing(&k);
        let mut times: Vec<f64> = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            model.forward_into(&x, shape, &mut out)?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        let rtt = rtt_before.zip(cores::core_round_trip(&k));
        let sharing = sharing_before.zip(cores::core_sharing(&k));
        let (median, min) = median_min(&mut times);
        let images_per_s = batch as f64 * 1e3 / median;
        let layers = if m.get_flag("no-layers") {
            None
        } else {
            Some(profile_layers(model, shape, &x, &mut out, iters)?)
        };
        let finite = out.iter().all(|v| v.is_finite());
        let name = model.name();
        // RepViT's rows keep their `repvit_<variant>` label; the others carry timm's name.
        let label = match model.arch() {
            Arch::RepVit(_) => format!("repvit_{name:<5}"),
            Arch::MobileNet(_) | Arch::MobileNetV4(_) => name.to_string(),
        };
        if json {
            println!(
                "{{\"variant\":\"{name}\",\"threads\":{},\"isa\":\"{}\",\"precision\":\"{}\",\"batch\":{batch},\"batch_split\":\"{split_name}\",\"images_per_s\":{images_per_s:.2},\"size\":{size},\"median_ms\":{median:.4},\"min_ms\":{min:.4},\"iters\":{iters},\"weights\":\"{}\",\"core_round_trip_ns\":{},\"core_sharing\":{}{}}}",
                k.threads(),
                k.isa(),
                k.precision(),
                if m.contains_id("weights") {
                    "file"
                } else {
                    "random"
                },
                rtt.map_or("null".to_string(), |(a, b)| format!(
                    "[{:.1},{:.1}]",
                    a.as_secs_f64() * 1e9,
                    b.as_secs_f64() * 1e9
                )),
                sharing.map_or("null".to_string(), |(a, b)| format!("[{a:.2},{b:.2}]")),
                layers.as_deref().map_or(String::new(), layers_json)
            );
        } else {
            println!(
                "{label} {} {} threads {:>2}  batch {batch}{}  {size}x{size}: median {median:8.3} ms  min {min:8.3} ms  {images_per_s:.1} images/s  ({iters} iters){}{}{}",
                k.isa(),
                k.precision(),
                k.threads(),
                if batch > 1 {
                    format!(" (split: {split_name})")
                } else {
                    String::new()
                },
                rtt.map_or(String::new(), |(a, b)| format!(
                    "  core round trip {:.0}/{:.0} ns",
                    a.as_secs_f64() * 1e9,
                    b.as_secs_f64() * 1e9
                )),
                sharing.map_or(String::new(), |(a, b)| format!(
                    ", sharing x{a:.2}/{b:.2}{}",
                    if a.max(b) > SHARED_CORE {
                        " (one core's two hardware threads)"
                    } else {
                        ""
                    }
                )),
                if finite {
                    ""
                } else {
                    "  WARNING: non-finite logits"
                }
            );
            if let Some(l) = &layers {
                print!("{}", layers_table(l, median));
            }
        }
    }
    Ok(())
}

/// `repvit bench --layers-at 1,2`: the same model at each thread count, timed end to end and per
/// step in rounds that alternate between the counts (so drift on a shared machine hits every count
/// alike), then one table: per step its median ms at every count and the speed-up of the last count
/// over the first; per kind the totals.
fn layers_at(
    k: &Kernels,
    counts: &[usize],
    make: &dyn Fn(&Kernels) -> Result<Vec<Network>, Error>,
    split: BatchSplit,
    shape_of: &dyn Fn(&Network) -> [usize; 4],
    iters: usize,
) -> Result<(), Error> {
    let ctx = |source| Error::Kernel {
        layer: "kernels".into(),
        source,
    };
    if counts.is_empty() || counts.contains(&0) {
        return Err(Error::Input {
            what: "--layers-at".into(),
            expected: "thread counts >= 1, e.g. 1,2".into(),
            found: format!("{counts:?}"),
        });
    }
    let mut per_count: Vec<Vec<Network>> = Vec::new();
    for &t in counts {
        let kt = k.clone().with_threads(t).map_err(ctx)?;
        per_count.push(
            make(&kt)?
                .into_iter()
                .map(|m| m.with_batch_split(split))
                .collect(),
        );
    }
    for mi in 0..per_count[0].len() {
        let models: Vec<&Network> = per_count.iter().map(|ms| &ms[mi]).collect();
        let shape = shape_of(models[0]);
        let x = bench_input(shape)?;
        let infos = models[0].layers(shape)?;
        let mut out = logits_buffer(models[0], shape)?;
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < 0.3 {
            for m in &models {
                m.forward_into(&x, shape, &mut out)?;
            }
        }
        // Per count: end-to-end times, then per step its times.
        let mut e2e: Vec<Vec<f64>> = vec![Vec::with_capacity(iters); counts.len()];
        let mut steps: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); infos.len()]; counts.len()];
        let mut step = vec![Duration::ZERO; infos.len()];
        for _ in 0..iters {
            for (c, m) in models.iter().enumerate() {
                let t0 = Instant::now();
                m.forward_into(&x, shape, &mut out)?;
                e2e[c].push(t0.elapsed().as_secs_f64() * 1e3);
                m.profile_into(&x, shape, &mut out, &mut step)?;
                for (a, t) in steps[c].iter_mut().zip(&step) {
                    a.push(t.as_secs_f64() * 1e3);
                }
            }
        }
        let med = |v: &mut Vec<f64>| median_min(v).0;
        let e2e: Vec<f64> = e2e.iter_mut().map(med).collect();
        let ms: Vec<Vec<f64>> = steps
            .iter_mut()
            .map(|s| s.iter_mut().map(med).collect())
            .collect();
        let (first, last) = (0, counts.len() - 1);
        let speedup = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "{} {} {} batch {} {}x{}: per-layer medians of {iters} profiled passes, counts interleaved",
            models[0].name(),
            k.isa(),
            k.precision(),
            shape[0],
            shape[2],
            shape[3]
        );
        let head: Vec<String> = counts.iter().map(|t| format!("{t}T ms")).collect();
        println!(
            "  {:>3} {:<52} {:<40} {} {:>8}",
            "#",
            "step",
            "configuration",
            head.iter().map(|h| format!("{h:>9}")).collect::<String>(),
            format!("{}T/{}T", counts[last], counts[first])
        );
        let cols = |v: &[f64]| v.iter().map(|x| format!("{x:>9.4}")).collect::<String>();
        for (i, info) in infos.iter().enumerate() {
            let v: Vec<f64> = ms.iter().map(|c| c[i]).collect();
            println!(
                "  {i:>3} {:<52} {:<40} {} {:>7.2}x",
                info.name,
                info.key,
                cols(&v),
                speedup(v[first], v[last])
            );
        }
        for kind in repvit::LayerKind::ALL {
            let v: Vec<f64> = ms
                .iter()
                .map(|c| {
                    infos
                        .iter()
                        .zip(c)
                        .filter(|(info, _)| info.kind == kind)
                        .map(|(_, t)| t)
                        .sum()
                })
                .collect();
            println!(
                "  {:>3} {:<52} {:<40} {} {:>7.2}x",
                "",
                format!("total {kind}"),
                "",
                cols(&v),
                speedup(v[first], v[last])
            );
        }
        let sums: Vec<f64> = ms.iter().map(|c| c.iter().sum()).collect();
        println!(
            "  {:>3} {:<52} {:<40} {} {:>7.2}x",
            "",
            "sum of steps",
            "",
            cols(&sums),
            speedup(sums[first], sums[last])
        );
        println!(
            "  {:>3} {:<52} {:<40} {} {:>7.2}x",
            "",
            "end to end (median of unprofiled passes)",
            "",
            cols(&e2e),
            speedup(e2e[first], e2e[last])
        );
    }
    Ok(())
}

/// Median and minimum of `times` (sorted in place; not empty).
fn median_min(times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        0.5 * (times[n / 2 - 1] + times[n / 2])
    };
    (median, times[0])
}

/// One step of the forward pass with its median time over the profiled passes.
struct TimedLayer {
    info: LayerInfo,
    median_ms: f64,
}

/// Per-step medians over `iters` profiled forward passes (the model's own steps, timed one by one).
fn profile_layers(
    model: &Network,
    shape: [usize; 4],
    x: &[f32],
    out: &mut [f32],
    iters: usize,
) -> Result<Vec<TimedLayer>, Error> {
    let infos = model.layers(shape)?;
    let mut step = vec![Duration::ZERO; infos.len()];
    let mut all: Vec<Vec<f64>> = vec![Vec::with_capacity(iters); infos.len()];
    for _ in 0..iters {
        model.profile_into(x, shape, out, &mut step)?;
        for (a, t) in all.iter_mut().zip(&step) {
            a.push(t.as_secs_f64() * 1e3);
        }
    }
    Ok(infos
        .into_iter()
        .zip(all.iter_mut())
        .map(|(info, t)| TimedLayer {
            info,
            median_ms: median_min(t).0,
        })
        .collect())
}

/// Rows of `(label, count, total ms, flops)` grouped by `key`, in order of first occurrence.
fn aggregate(
    layers: &[TimedLayer],
    key: impl Fn(&LayerInfo) -> String,
) -> Vec<(String, usize, f64, u64)> {
    let mut rows: Vec<(String, usize, f64, u64)> = Vec::new();
    for l in layers {
        let k = key(&l.info);
        match rows.iter_mut().find(|r| r.0 == k) {
            Some(r) => {
                r.1 += 1;
                r.2 += l.median_ms;
                r.3 += l.info.flops;
            }
            None => rows.push((k, 1, l.median_ms, l.info.flops)),
        }
    }
    rows
}

/// The per-layer breakdown: by kind, then by distinct configuration (largest total first).
fn layers_table(layers: &[TimedLayer], e2e_ms: f64) -> String {
    let mut s = String::new();
    let sum: f64 = layers.iter().map(|l| l.median_ms).sum();
    let row = |s: &mut String, label: &str, count: usize, ms: f64, flops: u64| {
        let gf = if ms > 0.0 {
            flops as f64 / (ms * 1e6)
        } else {
            0.0
        };
        s.push_str(&format!(
            "  {label:<40} {count:>4} {ms:>9.3} {:>6.1} {gf:>9.1}\n",
            100.0 * ms / e2e_ms
        ));
    };
    s.push_str(&format!(
        "  per layer (medians of profiled passes; sum {sum:.3} ms vs end-to-end median {e2e_ms:.3} ms)\n  {:<40} {:>4} {:>9} {:>6} {:>9}\n",
        "kind", "n", "total ms", "% e2e", "GFLOP/s"
    ));
    for (k, n, ms, f) in aggregate(layers, |i| i.kind.name().to_string()) {
        row(&mut s, &k, n, ms, f);
    }
    s.push_str(&format!(
        "  {:<40} {:>4} {:>9} {:>6} {:>9}\n",
        "configuration", "n", "total ms", "% e2e", "GFLOP/s"
    ));
    let mut by_key = aggregate(layers, |i| i.key.clone());
    by_key.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (k, n, ms, f) in by_key {
        row(&mut s, &k, n, ms, f);
    }
    s
}

/// `,"layers":[...]`: every step with its name, kind, configuration, median time and FLOPs.
fn layers_json(layers: &[TimedLayer]) -> String {
    let items: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                "{{\"name\":\"{}\",\"kind\":\"{}\",\"key\":\"{}\",\"median_ms\":{:.5},\"flops\":{}}}",
                l.info.name, l.info.kind, l.info.key, l.median_ms, l.info.flops
            )
        })
        .collect();
    format!(",\"layers\":[{}]", items.join(","))
}

fn main() -> ExitCode {
    let m = cli().get_matches();
    let r = match m.subcommand() {
        Some(("infer", sub)) => infer(sub),
        Some(("classify", sub)) => classify(sub),
        Some(("bench", sub)) => bench(sub),
        _ => Ok(()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
