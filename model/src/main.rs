//! `repvit`: run RepViT on `.npy` batches and measure latency.
//!
//! ```text
//! repvit infer --weights model.safetensors [--variant m1_0] --input x.npy --output logits.npy [--threads N]
//! repvit classify --weights model.safetensors [--variant m1_0] [--threads N] [--top K] IMAGE...
//! repvit bench [--variant m1_0|all] [--weights FILE] [--threads N] [--iters N] [--batch N] [--isa NAME] [--json]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::{Arg, ArgAction, ArgMatches, Command, value_parser};
use mobile_cnn_kernels::{Isa, Kernels};
use repvit::preprocess::{EvalTransform, imagenet_class, top_k};
use repvit::{Config, Error, RepVit, VARIANTS, npy};

fn cli() -> Command {
    let threads = Arg::new("threads")
        .long("threads")
        .value_parser(value_parser!(usize))
        .help("worker threads (default: all cores)");
    let isa = Arg::new("isa")
        .long("isa")
        .help("instruction set: scalar, avx2, avx512, neon (default: KERNELS_ISA or the widest)");
    let variant = |help: &'static str| Arg::new("variant").long("variant").help(help);
    Command::new("repvit")
        .about("RepViT inference on mobile-cnn-kernels")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(
            Command::new("infer")
                .about("logits of an NCHW float32 .npy batch")
                .arg(
                    Arg::new("weights")
                        .long("weights")
                        .required(true)
                        .help("timm model.safetensors"),
                )
                .arg(variant(
                    "variant (m1_0 or repvit_m1_0); detected from the checkpoint when absent",
                ))
                .arg(
                    Arg::new("input")
                        .long("input")
                        .required(true)
                        .help("float32 .npy of shape [N, 3, H, W]"),
                )
                .arg(
                    Arg::new("output")
                        .long("output")
                        .required(true)
                        .help("float32 .npy of shape [N, classes] to write"),
                )
                .arg(threads.clone())
                .arg(isa.clone()),
        )
        .subcommand(classify_cmd(threads.clone(), isa.clone()))
        .subcommand(
            Command::new("bench")
                .about("latency per variant (random weights unless --weights): median and min")
                .arg(variant("variant name or `all` (default: m1_0)").default_value("m1_0"))
                .arg(
                    Arg::new("weights")
                        .long("weights")
                        .help("timm model.safetensors instead of random weights"),
                )
                .arg(threads)
                .arg(isa)
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
                    Arg::new("size")
                        .long("size")
                        .value_parser(value_parser!(usize))
                        .default_value("224")
                        .help("image height and width"),
                )
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("one JSON object per line"),
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
                expected: "one of scalar, avx2, avx512, neon".into(),
                found: format!("`{name}`"),
            })?;
            Kernels::with_isa(isa).map_err(ctx)?
        }
        None => Kernels::new().map_err(ctx)?,
    };
    match m.get_one::<usize>("threads") {
        Some(&t) => k.with_threads(t).map_err(ctx),
        None => Ok(k),
    }
}

fn classify_cmd(threads: Arg, isa: Arg) -> Command {
    Command::new("classify")
        .about("top-K ImageNet-1k classes of JPEG/PNG images (timm's eval preprocessing)")
        .arg(
            Arg::new("weights")
                .long("weights")
                .required(true)
                .help("timm model.safetensors (ImageNet-1k head)"),
        )
        .arg(
            Arg::new("variant")
                .long("variant")
                .help("variant (m1_0 or repvit_m1_0); detected from the checkpoint when absent"),
        )
        .arg(threads)
        .arg(isa)
        .arg(
            Arg::new("top")
                .long("top")
                .value_parser(value_parser!(usize))
                .default_value("5")
                .help("classes printed per image"),
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
    // Images first: a bad image is reported before the (slower) model load.
    let (x, shape) = EvalTransform::default().batch(&images)?;
    let model = RepVit::load(
        weights,
        m.get_one::<String>("variant").map(String::as_str),
        &k,
    )?;
    let classes = model.num_classes();
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
    let model = RepVit::load(
        weights,
        m.get_one::<String>("variant").map(String::as_str),
        &k,
    )?;
    let input_path = m
        .get_one::<String>("input")
        .map(String::as_str)
        .unwrap_or_default();
    let x = npy::read(input_path)?;
    let shape: [usize; 4] = x.shape.clone().try_into().map_err(|_| Error::Input {
        what: input_path.to_string(),
        expected: format!("a 4-D NCHW array [N, {}, H, W]", model.config().in_chans),
        found: format!("shape {:?}", x.shape),
    })?;
    let t0 = Instant::now();
    let logits = model.forward(&x.data, shape)?;
    let dt = t0.elapsed();
    let out = m
        .get_one::<String>("output")
        .map(String::as_str)
        .unwrap_or_default();
    npy::write(out, &[shape[0], model.num_classes()], &logits)?;
    eprintln!(
        "{}: {} image(s) {}x{} -> {out} [{}, {}] in {:.2} ms ({}, {} threads)",
        model.config(),
        shape[0],
        shape[2],
        shape[3],
        shape[0],
        model.num_classes(),
        dt.as_secs_f64() * 1e3,
        k.isa(),
        k.threads()
    );
    Ok(())
}

fn bench(m: &ArgMatches) -> Result<(), Error> {
    let k = kernels(m)?;
    let iters = (*m.get_one::<usize>("iters").unwrap_or(&50)).max(1);
    let batch = (*m.get_one::<usize>("batch").unwrap_or(&1)).max(1);
    let size = (*m.get_one::<usize>("size").unwrap_or(&224)).max(1);
    let json = m.get_flag("json");
    let name = m
        .get_one::<String>("variant")
        .map(String::as_str)
        .unwrap_or("m1_0");
    let models: Vec<RepVit> = match m.get_one::<String>("weights") {
        Some(w) => vec![RepVit::load(w, Some(name).filter(|n| *n != "all"), &k)?],
        None if name == "all" => VARIANTS
            .iter()
            .map(|v| RepVit::random(&Config::from_variant(v), 1, &k))
            .collect::<Result<_, _>>()?,
        None => vec![RepVit::random(&Config::variant(name)?, 1, &k)?],
    };
    let shape = [batch, 3, size, size];
    let x: Vec<f32> = (0..batch * 3 * size * size)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    for model in &models {
        let mut out = vec![0.0; batch * model.num_classes()];
        // Warm-up: allocates the workspace, faults pages in, settles clocks.
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < 0.3 {
            model.forward_into(&x, shape, &mut out)?;
        }
        let mut times: Vec<f64> = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            model.forward_into(&x, shape, &mut out)?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let median = if iters % 2 == 1 {
            times[iters / 2]
        } else {
            0.5 * (times[iters / 2 - 1] + times[iters / 2])
        };
        let min = times[0];
        let finite = out.iter().all(|v| v.is_finite());
        let name = &model.config().name;
        if json {
            println!(
                "{{\"variant\":\"{name}\",\"threads\":{},\"isa\":\"{}\",\"batch\":{batch},\"size\":{size},\"median_ms\":{median:.4},\"min_ms\":{min:.4},\"iters\":{iters},\"weights\":\"{}\"}}",
                k.threads(),
                k.isa(),
                if m.contains_id("weights") {
                    "file"
                } else {
                    "random"
                }
            );
        } else {
            println!(
                "repvit_{name:<5} {} threads {:>2}  batch {batch}  {size}x{size}: median {median:8.3} ms  min {min:8.3} ms  ({iters} iters){}",
                k.isa(),
                k.threads(),
                if finite {
                    ""
                } else {
                    "  WARNING: non-finite logits"
                }
            );
        }
    }
    Ok(())
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
