//! Turns the latest criterion results into a benchmark record under `results/<cpu>-<date>/`:
//! - `kernels.md` (the machine, the measured peak per ISA, and every kernel benchmark with its
//!   GFLOP/s and percent of the peak of its ISA measured in the same run) and `kernels.csv`;
//! - `report.md`: RepViT end to end for every variant at one and all threads beside the paper's
//!   iPhone 12 figures, where the time goes per layer kind, every layer of M1.0, and the comparison
//!   with other engines from the peers file (`bench-suite/peers/`), with `layers.csv` and SVG charts
//!   (`time_by_kind_<family>.svg`, `gflops_<variant>.svg`, `peers_t<threads>_<family>.svg`, one
//!   per family so that MobileNet bars are not slivers beside RepViT-M2.3's); the peers file is
//!   copied as `peers.jsonl`;
//!   when a static estimate for ARM cores exists (`results/neon-estimate/latency.csv`, from
//!   `bench-suite/tools/neon_mca.py`, or `--estimate FILE`), a section with its predicted latencies.
//!
//! Run after `cargo bench`: `cargo run --release -p bench-suite --bin report [--peers FILE]`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bench_suite::charts::{bars_against_peak, grouped_bars, stacked_bars};
use bench_suite::criterion_results::{BenchResult, read_all};
use bench_suite::estimate::{ASSUMPTIONS, Prediction, latency_table, parse_latency};
use bench_suite::machine::{Machine, today};
use bench_suite::report::{
    OURS, PAPER, Peers, comparisons, md_table, num, parse_peers, percent_of_peak, verdicts,
};
use mobile_cnn_kernels::{Isa, Kernels};
use repvit::all_names;
use repvit::{Arch, LayerInfo, LayerKind, Network};

struct Args {
    criterion: PathBuf,
    out: PathBuf,
    peers: Option<PathBuf>,
    estimate: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // Where criterion writes: $CRITERION_HOME, else $CARGO_TARGET_DIR/criterion, else target/criterion.
    let criterion = match (
        std::env::var_os("CRITERION_HOME"),
        std::env::var_os("CARGO_TARGET_DIR"),
    ) {
        (Some(h), _) => PathBuf::from(h),
        (None, Some(t)) => PathBuf::from(t).join("criterion"),
        (None, None) => root.join("target/criterion"),
    };
    let default_peers = root.join("target/peers/peers.jsonl");
    let default_estimate = root.join("results/neon-estimate/latency.csv");
    let mut a = Args {
        criterion,
        out: root.join("results"),
        peers: default_peers.is_file().then_some(default_peers),
        estimate: default_estimate.is_file().then_some(default_estimate),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--criterion-dir" => a.criterion = v()?.into(),
            "--out" => a.out = v()?.into(),
            "--peers" => a.peers = Some(v()?.into()),
            "--estimate" => a.estimate = Some(v()?.into()),
            "-h" | "--help" => {
                return Err(
                    "usage: report [--criterion-dir DIR (target/criterion)] [--out DIR (results)] [--peers FILE (target/peers/peers.jsonl)] [--estimate FILE (results/neon-estimate/latency.csv)]"
                        .into(),
                );
            }
            _ => return Err(format!("unknown argument {k:?}; see --help")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    match run() {
        Ok(path) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<PathBuf, String> {
    let args = parse_args()?;
    let results = read_all(&args.criterion)
        .map_err(|e| format!("cannot read criterion results ({e}); run `cargo bench` first"))?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results under {}; run `cargo bench` first",
            args.criterion.display()
        ));
    }
    let machine = Machine::detect();
    let dir = args.out.join(format!("{}-{}", machine.cpu_slug(), today()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let peaks: BTreeMap<String, f64> = results
        .iter()
        .filter(|r| r.group == "peak_fma")
        .filter_map(|r| Some((r.function.clone(), r.giga_per_s()?)))
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# Kernel benchmarks, {}\n", today());
    let _ = writeln!(
        md,
        "One thread, batch 1, f32. Medians of criterion samples; a multiply-add counts 2 FLOP.\n"
    );
    let _ = writeln!(md, "## Machine\n\n{}", machine.to_markdown());
    let _ = writeln!(
        md,
        "## Measured peak (independent FMA chains, same run)\n\n| ISA | GFLOP/s |\n|---|---:|"
    );
    for (isa, g) in &peaks {
        let _ = writeln!(md, "| {isa} | {g:.1} |");
    }
    let mut csv = String::from("group,shape,isa,median_ns,mad_ns,gflops,percent_of_peak\n");
    let mut groups: BTreeMap<&str, Vec<&BenchResult>> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| r.group != "peak_fma" && !is_model_group(&r.group))
    {
        groups.entry(&r.group).or_default().push(r);
    }
    for (group, rs) in &groups {
        let _ = writeln!(
            md,
            "\n## {group}\n\n| shape | ISA | median (µs) | GFLOP/s | % of ISA peak |\n|---|---|---:|---:|---:|"
        );
        let mut worst: BTreeMap<&str, f64> = BTreeMap::new();
        // Groups named `..._t<N>` ran on N threads: compare with N times the one-core peak.
        let threads = group
            .rsplit_once("_t")
            .and_then(|(_, t)| t.parse::<f64>().ok())
            .unwrap_or(1.0);
        for r in rs {
            let g = r.giga_per_s();
            let pct = g
                .zip(peaks.get(&r.function))
                .map(|(g, p)| 100.0 * g / (p * threads));
            if let Some(p) = pct {
                let w = worst.entry(&r.function).or_insert(f64::INFINITY);
                *w = w.min(p);
            }
            let fmt = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} | {} |",
                r.value,
                r.function,
                r.median_ns / 1e3,
                fmt(g, 1),
                fmt(pct, 1)
            );
            let _ = writeln!(
                csv,
                "{group},{},{},{:.0},{:.0},{},{}",
                r.value,
                r.function,
                r.median_ns,
                r.mad_ns,
                fmt(g, 3),
                fmt(pct, 2)
            );
        }
        if !worst.is_empty() {
            let _ = writeln!(md, "\nLowest percent of peak per ISA in this group:");
            for (isa, w) in worst {
                let _ = writeln!(md, "- {isa}: {w:.1} %");
            }
        }
    }
    let write = |name: &str, s: &str| {
        let p = dir.join(name);
        std::fs::write(&p, s).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("kernels.md", &md)?;
    write("kernels.csv", &csv)?;
    if !results.iter().any(|r| is_model_group(&r.group)) {
        println!("no model benchmarks in the criterion results: report.md not written");
        return Ok(dir.join("kernels.md"));
    }
    let peers = match &args.peers {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let parsed = parse_peers(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            write("peers.jsonl", &text)?;
            // Named relative to the repository when it lies inside it (the record is committed).
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let shown = match (p.canonicalize(), root.canonicalize()) {
                (Ok(abs), Ok(root)) => abs
                    .strip_prefix(&root)
                    .map_or_else(|_| abs.display().to_string(), |r| r.display().to_string()),
                _ => p.display().to_string(),
            };
            Some((shown, parsed))
        }
        None => None,
    };
    let estimate = match &args.estimate {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(parse_latency(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let files = model_report(
        &results,
        &peaks,
        &machine,
        peers.as_ref(),
        estimate.as_deref(),
    )?;
    for (name, text) in &files {
        write(name, text)?;
    }
    Ok(dir.join("report.md"))
}

fn is_model_group(g: &str) -> bool {
    g.starts_with("model_e2e_t") || g.starts_with("layers_")
}

/// One step of a variant with the median of its configuration's per-layer benchmark.
struct TimedStep {
    info: LayerInfo,
    ns: Option<f64>,
}

/// Sums per layer kind: (kind, count, total ns of timed steps, FLOPs of timed steps).
fn by_kind(steps: &[TimedStep]) -> Vec<(LayerKind, usize, f64, u64)> {
    LayerKind::ALL
        .iter()
        .filter_map(|&k| {
            let of: Vec<&TimedStep> = steps.iter().filter(|s| s.info.kind == k).collect();
            (!of.is_empty()).then(|| {
                let timed = of.iter().filter_map(|s| s.ns.map(|t| (t, s.info.flops)));
                let (ns, fl) = timed.fold((0.0, 0), |a, (t, f)| (a.0 + t, a.1 + f));
                (k, of.len(), ns, fl)
            })
        })
        .collect()
}

/// The families the report draws a chart each for: (title, file-name slug).
const FAMILIES: [(&str, &str); 3] = [
    ("RepViT", "repvit"),
    ("MobileNetV2/V3 and EfficientNet", "mobilenet"),
    ("MobileNetV4", "mobilenetv4"),
];

/// The entry of [`FAMILIES`] a model name (ours, `m1_0`, or timm's) belongs to; RepViT's for a
/// name no family knows.
fn family_of(name: &str) -> (&'static str, &'static str) {
    match Arch::named(name) {
        Ok(Arch::MobileNet(_)) => FAMILIES[1],
        Ok(Arch::MobileNetV4(_)) => FAMILIES[2],
        _ => FAMILIES[0],
    }
}

/// `report.md`, `layers.csv` and the charts, as (file name, contents).
fn model_report(
    results: &[BenchResult],
    peaks: &BTreeMap<String, f64>,
    machine: &Machine,
    peers: Option<&(String, Peers)>,
    estimate: Option<&[Prediction]>,
) -> Result<Vec<(String, String)>, String> {
    let e2e: Vec<(&BenchResult, usize)> = results
        .iter()
        .filter_map(|r| {
            let t = r.group.strip_prefix("model_e2e_t")?.parse().ok()?;
            Some((r, t))
        })
        .collect();
    let isa_name = e2e
        .first()
        .map(|(r, _)| r.function.clone())
        .or_else(|| {
            results
                .iter()
                .find(|r| r.group.starts_with("layers_"))
                .map(|r| r.function.clone())
        })
        .unwrap_or_default();
    let isa = Isa::from_name(&isa_name)
        .ok_or_else(|| format!("unknown ISA {isa_name:?} in the model benchmark ids"))?;
    let peak = peaks.get(&isa_name).copied();
    let mut thread_counts: Vec<usize> = e2e.iter().map(|(_, t)| *t).collect();
    thread_counts.sort_unstable();
    thread_counts.dedup();

    let mut md = String::new();
    let _ = writeln!(md, "# RepViT on {}, {}\n", machine.cpu, today());
    let _ = writeln!(
        md,
        "Batch 1, each model at its timm pretrained input size (224x224; MobileNetV4-M 256x256, \
         -L 384x384), f32, random weights (the speed does not depend on them), ISA {isa_name}, \
         through the model's own code path (`cargo bench`, criterion medians). A multiply-add counts \
         2 FLOP. Percent of peak: achieved GFLOP/s over the one-core FMA peak measured by the \
         kernels bench in the same run times the threads.\n"
    );
    let _ = writeln!(
        md,
        "## Machine\n\n{}- ISA used: {isa_name}\n- Threads: {}\n- Measured FMA peak, one core ({isa_name}): {} GFLOP/s\n",
        machine.to_markdown(),
        thread_counts
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        num(peak, 1)
    );

    // Per-layer data of every variant (from the per-layer benches, one thread).
    let k1 = Kernels::with_isa(isa)
        .and_then(|k| k.with_threads(1))
        .map_err(|e| format!("kernels for {isa_name}: {e}"))?;
    let mut per_variant: Vec<(String, Vec<TimedStep>)> = Vec::new();
    for name in all_names() {
        let group = format!("layers_{name}_t1");
        let times: BTreeMap<&str, f64> = results
            .iter()
            .filter(|r| r.group == group && r.function == isa_name)
            .map(|r| (r.value.as_str(), r.median_ns))
            .collect();
        if times.is_empty() {
            continue;
        }
        let arch = Arch::named(&name).map_err(|e| format!("{name}: {e}"))?;
        let side = arch.input_size();
        let model = Network::random_arch(arch, 1, &k1).map_err(|e| format!("{name}: {e}"))?;
        let steps = model
            .layers([1, 3, side, side])
            .map_err(|e| format!("{name}: {e}"))?
            .into_iter()
            .map(|info| TimedStep {
                ns: times.get(info.key.as_str()).copied(),
                info,
            })
            .collect();
        per_variant.push((name, steps));
    }
    let layer_sum_ms = |name: &str| {
        per_variant
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.iter().filter_map(|s| s.ns).sum::<f64>() / 1e6)
    };

    // End to end.
    let _ = writeln!(
        md,
        "## End to end\n\nOur median beside the paper's Core ML latency on an iPhone 12 (a phone's \
         Neural Engine, not this CPU: the comparison shows the gap, not a like-for-like race). \
         \"sum of layers\" adds the per-layer benchmarks (1 thread) of every step.\n"
    );
    let mut rows = Vec::new();
    for p in &PAPER {
        for &t in &thread_counts {
            let Some((r, _)) = e2e.iter().find(|(r, tt)| *tt == t && r.value == p.variant) else {
                continue;
            };
            let ms = r.median_ns / 1e6;
            let g = r.giga_per_s();
            rows.push(vec![
                p.variant.to_string(),
                t.to_string(),
                format!("{ms:.2}"),
                num(Some(r.mad_ns / 1e6), 2),
                if t == 1 {
                    num(layer_sum_ms(p.variant), 2)
                } else {
                    "-".into()
                },
                num(g, 1),
                num(g.zip(peak).and_then(|(g, pk)| percent_of_peak(g, pk, t)), 1),
                format!("{:.1}", p.iphone12_ms),
                format!("{:.1}x", ms / p.iphone12_ms),
                num(p.params_m, 2),
                num(p.gmacs, 3),
                num(r.elements.map(|e| e as f64 / 2e9), 3),
            ]);
        }
    }
    if let Some(pk) = peak
        && e2e
            .iter()
            .any(|(r, t)| r.giga_per_s().is_some_and(|g| g > pk * *t as f64))
    {
        let _ = writeln!(
            md,
            "**Warning:** some figures exceed the FMA peak measured in this run, so the peak probe \
             was disturbed (the machine was busy while it ran): percentages of peak in this record \
             are not meaningful. Rerun `cargo bench` on a quiet machine.\n"
        );
    }
    md.push_str(&md_table(
        &[
            "variant",
            "threads",
            "median (ms)",
            "MAD (ms)",
            "sum of layers (ms)",
            "GFLOP/s",
            "% of peak",
            "iPhone 12 (ms, paper)",
            "ours / iPhone 12",
            "params (M, paper)",
            "GMACs (paper)",
            "GMACs (counted)",
        ],
        &[
            false, true, true, true, true, true, true, true, true, true, true, true,
        ],
        &rows,
    ));

    // The other families on the same kernels, beside RepViT M0.9 and M1.0.
    let others: Vec<String> = ["m0_9".to_string(), "m1_0".to_string()]
        .into_iter()
        .chain(
            all_names()
                .into_iter()
                .filter(|n| family_of(n).0 != "RepViT"),
        )
        .collect();
    let mut rows = Vec::new();
    for name in &others {
        let name = name.as_str();
        for &t in &thread_counts {
            let Some((r, _)) = e2e.iter().find(|(r, tt)| *tt == t && r.value == name) else {
                continue;
            };
            let g = r.giga_per_s();
            let side = Arch::named(name).map_or(0, |a| a.input_size());
            rows.push(vec![
                name.to_string(),
                format!("{side}x{side}"),
                t.to_string(),
                format!("{:.2}", r.median_ns / 1e6),
                num(Some(r.mad_ns / 1e6), 2),
                if t == 1 {
                    num(layer_sum_ms(name), 2)
                } else {
                    "-".into()
                },
                num(g, 1),
                num(g.zip(peak).and_then(|(g, pk)| percent_of_peak(g, pk, t)), 1),
                num(r.elements.map(|e| e as f64 / 2e9), 3),
            ]);
        }
    }
    if rows.iter().any(|r| family_of(&r[0]).0 != "RepViT") {
        let _ = writeln!(
            md,
            "\n## MobileNets, EfficientNets and MobileNetV4 on the same kernels\n\ntimm's \
             MobileNetV3-Large/-Small, MobileNetV2, EfficientNet-B0/-Lite0 and MobileNetV4 \
             conv S/M/L built from the same kernels and run by the same runner as RepViT (random \
             weights, BatchNorm folded), each at its timm pretrained input size, beside RepViT \
             M0.9 and M1.0.\n"
        );
        md.push_str(&md_table(
            &[
                "network",
                "input",
                "threads",
                "median (ms)",
                "MAD (ms)",
                "sum of layers (ms)",
                "GFLOP/s",
                "% of peak",
                "GMACs (counted)",
            ],
            &[false, true, true, true, true, true, true, true, true],
            &rows,
        ));
    }

    // ARM cores, static estimate.
    if let Some(preds) = estimate {
        let _ = writeln!(
            md,
            "\n## ARM cores: predicted latency (static estimate, not measured)\n\n{ASSUMPTIONS} \
             From `results/neon-estimate/latency.csv`; per-kernel figures in \
             `results/neon-estimate/kernels.md`.\n"
        );
        md.push_str(&latency_table(preds));
    }

    // Where the time goes.
    let kinds: Vec<&str> = LayerKind::ALL.iter().map(|k| k.name()).collect();
    let _ = writeln!(
        md,
        "\n## Where the time goes (one thread, per-layer benchmarks)\n\nEach cell: milliseconds (percent of the sum of layers). One chart per family (`time_by_kind_<family>.svg`), so that each family's bars share a scale.\n"
    );
    let mut rows = Vec::new();
    let mut bars = Vec::new();
    for (name, steps) in &per_variant {
        let bk = by_kind(steps);
        let total: f64 = bk.iter().map(|b| b.2).sum();
        let mut row = vec![name.to_string(), format!("{:.2}", total / 1e6)];
        let mut vals = Vec::new();
        for k in LayerKind::ALL {
            let ns = bk.iter().find(|b| b.0 == k).map_or(0.0, |b| b.2);
            vals.push(ns / 1e6);
            row.push(format!(
                "{:.2} ({:.1} %)",
                ns / 1e6,
                100.0 * ns / total.max(1e-9)
            ));
        }
        let missing = steps.iter().filter(|s| s.ns.is_none()).count();
        row.push(missing.to_string());
        rows.push(row);
        bars.push((name.to_string(), vals));
    }
    let mut headers = vec!["variant", "sum (ms)"];
    headers.extend(kinds.iter());
    headers.push("steps without a benchmark");
    md.push_str(&md_table(&headers, &vec![true; headers.len()], &rows));
    let mut files = Vec::new();
    for (family, slug) in FAMILIES {
        let bars: Vec<(String, Vec<f64>)> = bars
            .iter()
            .filter(|(n, _)| family_of(n).0 == family)
            .cloned()
            .collect();
        if bars.is_empty() {
            continue;
        }
        let name = format!("time_by_kind_{slug}.svg");
        let _ = writeln!(md, "![time by kind, {family}]({name})");
        files.push((
            name,
            stacked_bars(
                &format!("{family}, time per layer kind, 1 thread, {isa_name}"),
                "milliseconds",
                &kinds,
                &bars,
            )?,
        ));
    }
    md.push('\n');

    // Per kind GFLOP/s, every variant.
    let _ = writeln!(md, "\n### Achieved GFLOP/s per layer kind (one thread)\n");
    let mut rows = Vec::new();
    for (name, steps) in &per_variant {
        for (k, count, ns, fl) in by_kind(steps) {
            if fl == 0 {
                continue;
            }
            let g = fl as f64 / ns;
            rows.push(vec![
                name.to_string(),
                k.name().to_string(),
                count.to_string(),
                format!("{:.3}", ns / 1e6),
                format!("{g:.1}"),
                num(peak.and_then(|p| percent_of_peak(g, p, 1)), 1),
            ]);
        }
    }
    md.push_str(&md_table(
        &["variant", "kind", "layers", "ms", "GFLOP/s", "% of peak"],
        &[false, false, true, true, true, true],
        &rows,
    ));

    // Every layer of M1.0, and layers.csv for all.
    let mut csv =
        String::from("variant,index,name,kind,key,median_us,flops,gflops,percent_of_peak\n");
    for (name, steps) in &per_variant {
        let mut rows = Vec::new();
        let mut chart = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let g =
                s.ns.filter(|_| s.info.flops > 0)
                    .map(|ns| s.info.flops as f64 / ns);
            let pct = g.zip(peak).and_then(|(g, p)| percent_of_peak(g, p, 1));
            let _ = writeln!(
                csv,
                "{name},{i},{},{},{},{},{},{},{}",
                s.info.name,
                s.info.kind,
                s.info.key,
                num(s.ns.map(|n| n / 1e3), 3),
                s.info.flops,
                num(g, 3),
                num(pct, 2)
            );
            if let Some(g) = g {
                let ki = LayerKind::ALL
                    .iter()
                    .position(|k| *k == s.info.kind)
                    .unwrap_or(0);
                chart.push((ki, g));
            }
            rows.push(vec![
                i.to_string(),
                format!("`{}`", s.info.name),
                s.info.key.clone(),
                num(s.ns.map(|n| n / 1e3), 1),
                num(g, 1),
                num(pct, 1),
            ]);
        }
        if let Some(p) = peak {
            files.push((
                format!("gflops_{name}.svg"),
                bars_against_peak(
                    &format!("{name}, GFLOP/s per layer, 1 thread, {isa_name}"),
                    &kinds,
                    &chart,
                    p,
                )?,
            ));
        }
        if *name == "m1_0" {
            let _ = writeln!(
                md,
                "\n## Every layer of M1.0 (one thread)\n\nTime: the per-layer benchmark of the step's configuration. Other variants: `layers.csv` and `gflops_<variant>.svg`.\n\n![GFLOP/s per layer](gflops_m1_0.svg)\n"
            );
            md.push_str(&md_table(
                &["#", "layer", "configuration", "µs", "GFLOP/s", "% of peak"],
                &[true, false, false, true, true, true],
                &rows,
            ));
        }
    }
    files.push(("layers.csv".to_string(), csv));

    // Peers.
    let _ = writeln!(md, "\n## Against other engines\n");
    match peers {
        None => {
            let _ = writeln!(
                md,
                "No peers file (run `bench-suite/peers/`, which writes `target/peers/peers.jsonl`, or pass `--peers FILE`): no comparison with other engines in this record.\n"
            );
        }
        Some((path, p)) => {
            let order: Vec<&str> = PAPER.iter().map(|p| p.variant).collect();
            let comps = comparisons(p, &order);
            let _ = writeln!(
                md,
                "From `{path}` (copied as `peers.jsonl`): every engine timed in the same run, batch 1. \
                 Ratio: our median over the engine's (below 1: we are faster). Our figure here is the \
                 peer run's `repvit bench`, not the criterion median above.\n"
            );
            if let Some(m) = &p.machine {
                let _ = writeln!(md, "Peer run machine: `{m}`\n");
            }
            let mut engines: Vec<(String, String)> = p
                .rows
                .iter()
                .map(|r| (r.engine.clone(), r.engine_version.clone()))
                .collect();
            engines.sort();
            engines.dedup();
            let _ = writeln!(
                md,
                "Engines: {}\n",
                engines
                    .iter()
                    .map(|(e, v)| format!("{e} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let others: Vec<String> = {
                let mut o: Vec<String> = comps
                    .iter()
                    .flat_map(|c| c.others.keys().cloned())
                    .collect();
                o.sort();
                o.dedup();
                o
            };
            let mut headers = vec![
                "variant".to_string(),
                "threads".into(),
                "repvit-rs (ms)".into(),
            ];
            for e in &others {
                headers.push(format!("{e} (ms)"));
                headers.push(format!("ours / {e}"));
            }
            let rows: Vec<Vec<String>> = comps
                .iter()
                .map(|c| {
                    let mut r = vec![c.variant.clone(), c.threads.to_string(), num(c.ours_ms, 2)];
                    for e in &others {
                        r.push(num(c.others.get(e).copied(), 2));
                        r.push(num(c.ratio(e), 3));
                    }
                    r
                })
                .collect();
            let h: Vec<&str> = headers.iter().map(String::as_str).collect();
            let mut right = vec![true; h.len()];
            right[0] = false;
            md.push_str(&md_table(&h, &right, &rows));
            // The same figures as charts, one per thread count: ms per variant, one bar per engine.
            let mut thread_counts: Vec<usize> = comps.iter().map(|c| c.threads).collect();
            thread_counts.sort_unstable();
            thread_counts.dedup();
            let mut series = vec![OURS.to_string()];
            series.extend(others.iter().cloned());
            for (t, (family, slug)) in thread_counts
                .into_iter()
                .flat_map(|t| FAMILIES.into_iter().map(move |f| (t, f)))
            {
                let cs: Vec<_> = comps
                    .iter()
                    .filter(|c| c.threads == t && family_of(&c.variant).0 == family)
                    .collect();
                if cs.is_empty() {
                    continue;
                }
                let groups: Vec<String> = cs.iter().map(|c| c.variant.clone()).collect();
                let values: Vec<Vec<Option<f64>>> = cs
                    .iter()
                    .map(|c| {
                        std::iter::once(c.ours_ms)
                            .chain(others.iter().map(|e| c.others.get(e).copied()))
                            .collect()
                    })
                    .collect();
                let name = format!("peers_t{t}_{slug}.svg");
                let svg = grouped_bars(
                    &format!(
                        "{family}: median ms per image, {t} thread{}, batch 1 (lower is faster)",
                        if t == 1 { "" } else { "s" }
                    ),
                    "ms",
                    &groups,
                    &series,
                    &values,
                )?;
                let _ = writeln!(md, "\n![peers at {t} threads, {family}]({name})");
                files.push((name, svg));
            }
            let _ = writeln!(md, "\n### Speed targets (issue 6)\n");
            for v in verdicts(&comps) {
                let _ = writeln!(md, "- {}", v.sentence());
            }
        }
    }
    files.push(("report.md".to_string(), md));
    Ok(files)
}
