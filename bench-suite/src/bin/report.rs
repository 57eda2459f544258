//! Turns the latest criterion results into a benchmark record under `results/<cpu>-<date>/`:
//! `kernels.md` (the machine, the measured peak per ISA, and every kernel benchmark with its
//! GFLOP/s and percent of the peak of its ISA measured in the same run) and `kernels.csv`.
//!
//! Run after `cargo bench`: `cargo run --release -p bench-suite --bin report`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bench_suite::criterion_results::{BenchResult, read_all};
use bench_suite::machine::{Machine, today};

struct Args {
    criterion: PathBuf,
    out: PathBuf,
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
    let mut a = Args {
        criterion,
        out: root.join("results"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--criterion-dir" => a.criterion = v()?.into(),
            "--out" => a.out = v()?.into(),
            "-h" | "--help" => {
                return Err(
                    "usage: report [--criterion-dir DIR (target/criterion)] [--out DIR (results)]"
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
    for r in results.iter().filter(|r| r.group != "peak_fma") {
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
    Ok(dir.join("kernels.md"))
}
