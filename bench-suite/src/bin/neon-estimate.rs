//! Predicted single-core latency of every RepViT variant on the ARM cores of a static estimate:
//! reads `kernels.csv` and `cores.csv` from DIR (written by `bench-suite/tools/neon_mca.py`), costs
//! every layer of every variant at 224x224 with [`bench_suite::estimate`], and writes
//! `DIR/latency.csv` and `DIR/latency.md`.
//!
//! `cargo run --release -p bench-suite --bin neon-estimate -- [DIR (results/neon-estimate)]`

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bench_suite::estimate::{
    ASSUMPTIONS, latency_csv, latency_table, parse_cores, parse_main_loops, predict, rates,
};
use mobile_cnn_kernels::{Isa, Kernels};
use repvit::{RepVit, RepVitConfig, VARIANTS};

fn main() -> ExitCode {
    match run() {
        Ok(p) => {
            println!("wrote {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("neon-estimate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    let dir = match args.next().as_deref() {
        Some("-h" | "--help") => {
            return Err("usage: neon-estimate [DIR (results/neon-estimate)]".into());
        }
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/neon-estimate"),
    };
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}; see --help"));
    }
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(|e| {
            format!(
                "{}: {e} (run `python3 bench-suite/tools/neon_mca.py` first)",
                p.display()
            )
        })
    };
    let cores = parse_cores(&read("cores.csv")?)?;
    let loops = parse_main_loops(&read("kernels.csv")?)?;
    // The layer list (shapes and FLOPs) does not depend on the ISA: build it with this machine's.
    let k = Kernels::with_isa(Isa::best())
        .and_then(|k| k.with_threads(1))
        .map_err(|e| e.to_string())?;
    let mut layers = Vec::new();
    for v in &VARIANTS {
        let model = RepVit::random(&RepVitConfig::from_variant(v), 1, &k)
            .map_err(|e| format!("{}: {e}", v.name))?;
        let l = model
            .layers([1, 3, 224, 224])
            .map_err(|e| format!("{}: {e}", v.name))?;
        layers.push((v.name, l));
    }
    let mut preds = Vec::new();
    let mut rate_rows = String::new();
    for core in &cores {
        let r = rates(&loops, &core.label)?;
        let _ = writeln!(
            rate_rows,
            "| {} | {:.2} ({:.0} %) | {:.2} ({:.0} %) |",
            core.label,
            r.0,
            100.0 * r.0 / core.peak,
            r.1,
            100.0 * r.1 / core.peak
        );
        for (name, l) in &layers {
            preds.push(predict(name, l, core, r));
        }
    }
    let csv = latency_csv(&preds);
    let mut md =
        String::from("# RepViT on ARM cores: predicted single-core latency (static estimate)\n\n");
    let _ = writeln!(md, "{ASSUMPTIONS}\n");
    let _ = writeln!(
        md,
        "Batch 1, 224x224, f32, one core. Rates used (FLOP/cycle, percent of the core model's peak):\n\n\
         | core | pointwise loop | depthwise loop |\n|---|---:|---:|\n{rate_rows}"
    );
    md.push_str(&latency_table(&preds));
    let _ = writeln!(
        md,
        "\nPer-core details and the inner loops: `kernels.md`. Machine-readable: `latency.csv`. \
         Regenerate: `python3 bench-suite/tools/neon_mca.py`."
    );
    let write = |name: &str, s: &str| {
        let p = dir.join(name);
        std::fs::write(&p, s).map_err(|e| format!("{}: {e}", p.display()))
    };
    write("latency.csv", &csv)?;
    write("latency.md", &md)?;
    Ok(dir.join("latency.md"))
}
