//! Reads criterion's saved results (`target/criterion/**/new/{benchmark,estimates}.json`).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One benchmark's latest result.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Criterion group, e.g. `dwconv3x3_s1`.
    pub group: String,
    /// Function id; in this suite, the ISA name.
    pub function: String,
    /// Parameter, e.g. `56x56x48`; empty when none.
    pub value: String,
    /// Median time per iteration, nanoseconds.
    pub median_ns: f64,
    /// Median absolute deviation, nanoseconds.
    pub mad_ns: f64,
    /// Throughput elements per iteration (in this suite: floating-point operations), if declared.
    pub elements: Option<u64>,
}

impl BenchResult {
    /// Throughput in giga-elements per second (GFLOP/s in this suite).
    pub fn giga_per_s(&self) -> Option<f64> {
        self.elements.map(|e| e as f64 / self.median_ns)
    }
}

/// Every result under `dir` (criterion's output folder), sorted by group, value and function.
pub fn read_all(dir: &Path) -> Result<Vec<BenchResult>, String> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for bench in files {
        let new = bench.parent().expect("benchmark.json has a parent");
        let read = |p: PathBuf| -> Result<Value, String> {
            let s = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&s).map_err(|e| format!("{}: {e}", p.display()))
        };
        let b = read(bench.clone())?;
        let e = read(new.join("estimates.json"))?;
        let field = |k: &str| {
            b.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let num = |k: &str| {
            e.get(k)
                .and_then(|v| v.get("point_estimate"))
                .and_then(Value::as_f64)
        };
        let Some(median_ns) = num("median") else {
            return Err(format!("{}: no median estimate", new.display()));
        };
        out.push(BenchResult {
            group: field("group_id"),
            function: field("function_id"),
            value: field("value_str"),
            median_ns,
            mad_ns: num("median_abs_dev").unwrap_or(f64::NAN),
            elements: b
                .get("throughput")
                .and_then(|t| t.get("Elements"))
                .and_then(Value::as_u64),
        });
    }
    out.sort_by(|a, b| (&a.group, &a.value, &a.function).cmp(&(&b.group, &b.value, &b.function)));
    Ok(out)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "new") {
                let b = path.join("benchmark.json");
                if b.is_file() {
                    files.push(b);
                }
            } else {
                collect(&path, files)?;
            }
        }
    }
    Ok(())
}
