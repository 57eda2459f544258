//! A static estimate of RepViT's single-core latency on ARM cores no one here can run, from the
//! llvm-mca throughput of the NEON kernels' inner loops (`bench-suite/tools/neon_mca.py` writes
//! `kernels.csv` and `cores.csv`) and the per-layer FLOP counts of the model.
//!
//! The model, stated with every table it produces:
//! - each layer runs at its kernel's main inner loop's steady-state FLOP/cycle (llvm-mca): pointwise
//!   layers and the stem convolutions (im2col + the pointwise GEMM) at the pointwise loop's rate,
//!   depthwise layers at the depthwise loop's; squeeze-excite, pooling and the classifier (at most a
//!   few percent of the FLOPs) at the depthwise rate; the input copy (no FLOPs) costs nothing;
//! - nothing else costs time: no cache misses, tile edges, epilogues, packing or threading, so the
//!   figure is a lower bound of one core's latency at the given clock;
//! - one core at its published clock.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use repvit::{LayerInfo, LayerKind};

use crate::report::{PAPER, md_table, num};

/// One core of `cores.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    /// Display name, e.g. `Cortex-A76`.
    pub label: String,
    /// The llvm-mca `-mcpu` name.
    pub mcpu: String,
    /// Published clock, GHz.
    pub clock_ghz: f64,
    /// The core model's f32 peak, FLOP per cycle.
    pub peak: f64,
}

/// The main inner loop of one kernel on one core (a `main` row of `kernels.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoopRate {
    /// Registry name of the kernel, e.g. `pointwise_8x8_neon`.
    pub kernel: String,
    /// Element type of the loop's arithmetic (`f32`, `f16`, `bf16`).
    pub dtype: String,
    /// The core's display name.
    pub core: String,
    /// FLOP per cycle of the loop; `None` when the core lacks a feature the loop needs.
    pub flop_per_cycle: Option<f64>,
}

fn records(text: &str, what: &str) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r
        .headers()
        .map_err(|e| format!("{what}: {e}"))?
        .iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{what}: {e}"))?;
        out.push(
            headers
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_string))
                .collect(),
        );
    }
    Ok(out)
}

fn field<'a>(
    row: &'a BTreeMap<String, String>,
    key: &str,
    what: &str,
    line: usize,
) -> Result<&'a str, String> {
    row.get(key)
        .map(String::as_str)
        .ok_or_else(|| format!("{what} line {line}: expected a column \"{key}\""))
}

fn positive(s: &str, key: &str, what: &str, line: usize) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| format!("{what} line {line}: {key} = {s:?}, expected a positive number"))
}

/// Parses `cores.csv` (columns `core`, `mcpu`, `clock_ghz`, `peak_f32_flop_per_cycle`). Errors
/// name the line and the column.
pub fn parse_cores(text: &str) -> Result<Vec<Core>, String> {
    let what = "cores.csv";
    let mut out = Vec::new();
    for (i, row) in records(text, what)?.iter().enumerate() {
        let line = i + 2;
        out.push(Core {
            label: field(row, "core", what, line)?.to_string(),
            mcpu: field(row, "mcpu", what, line)?.to_string(),
            clock_ghz: positive(
                field(row, "clock_ghz", what, line)?,
                "clock_ghz",
                what,
                line,
            )?,
            peak: positive(
                field(row, "peak_f32_flop_per_cycle", what, line)?,
                "peak_f32_flop_per_cycle",
                what,
                line,
            )?,
        });
    }
    if out.is_empty() {
        return Err(format!("{what}: no cores"));
    }
    Ok(out)
}

/// Parses the `main` rows of `kernels.csv` (columns `kernel`, `main`, `dtype`, `core`,
/// `flop_per_cycle`; an empty rate means the core lacks the loop's feature).
pub fn parse_main_loops(text: &str) -> Result<Vec<LoopRate>, String> {
    let what = "kernels.csv";
    let mut out = Vec::new();
    for (i, row) in records(text, what)?.iter().enumerate() {
        let line = i + 2;
        if field(row, "main", what, line)? != "1" {
            continue;
        }
        let rate = field(row, "flop_per_cycle", what, line)?;
        out.push(LoopRate {
            kernel: field(row, "kernel", what, line)?.to_string(),
            dtype: field(row, "dtype", what, line)?.to_string(),
            core: field(row, "core", what, line)?.to_string(),
            flop_per_cycle: if rate.is_empty() {
                None
            } else {
                Some(positive(rate, "flop_per_cycle", what, line)?)
            },
        });
    }
    Ok(out)
}

/// The f32 rates the latency model uses on one core: (pointwise, depthwise) FLOP per cycle, from
/// the first f32 main loop of a kernel named `pointwise*` and of one named `dwconv*`.
pub fn rates(loops: &[LoopRate], core: &str) -> Result<(f64, f64), String> {
    let find = |prefix: &str| {
        loops
            .iter()
            .find(|l| l.core == core && l.dtype == "f32" && l.kernel.starts_with(prefix))
            .and_then(|l| l.flop_per_cycle)
            .ok_or_else(|| format!("kernels.csv: no f32 main loop of a {prefix}* kernel on {core}"))
    };
    Ok((find("pointwise")?, find("dwconv")?))
}

/// Predicted cycles of one layer at the given (pointwise, depthwise) FLOP/cycle.
pub fn layer_cycles(l: &LayerInfo, (pw, dw): (f64, f64)) -> f64 {
    let rate = match l.kind {
        LayerKind::Pointwise | LayerKind::StemConv => pw,
        LayerKind::DwConv | LayerKind::Se | LayerKind::Pool | LayerKind::Linear => dw,
        LayerKind::Input => return 0.0,
    };
    l.flops as f64 / rate
}

/// One predicted latency.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Variant without `repvit_`.
    pub variant: String,
    /// Core display name.
    pub core: String,
    /// Clock used, GHz.
    pub clock_ghz: f64,
    /// Predicted single-core latency, milliseconds.
    pub ms: f64,
    /// Share of the predicted time in pointwise and stem layers, percent.
    pub pointwise_percent: f64,
}

/// The prediction for one variant's layers on one core.
pub fn predict(variant: &str, layers: &[LayerInfo], core: &Core, rates: (f64, f64)) -> Prediction {
    let total: f64 = layers.iter().map(|l| layer_cycles(l, rates)).sum();
    let pw: f64 = layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Pointwise | LayerKind::StemConv))
        .map(|l| layer_cycles(l, rates))
        .sum();
    Prediction {
        variant: variant.to_string(),
        core: core.label.clone(),
        clock_ghz: core.clock_ghz,
        ms: total / (core.clock_ghz * 1e6),
        pointwise_percent: 100.0 * pw / total.max(1e-9),
    }
}

/// Header of `latency.csv`.
pub const LATENCY_CSV_HEADER: &str = "variant,core,clock_ghz,predicted_ms,pointwise_percent";

/// `latency.csv` of `preds`.
pub fn latency_csv(preds: &[Prediction]) -> String {
    let mut s = format!("{LATENCY_CSV_HEADER}\n");
    for p in preds {
        let _ = writeln!(
            s,
            "{},{},{},{:.3},{:.1}",
            p.variant, p.core, p.clock_ghz, p.ms, p.pointwise_percent
        );
    }
    s
}

/// Parses `latency.csv` back (for the report).
pub fn parse_latency(text: &str) -> Result<Vec<Prediction>, String> {
    let what = "latency.csv";
    let mut out = Vec::new();
    for (i, row) in records(text, what)?.iter().enumerate() {
        let line = i + 2;
        let f = |k: &str| -> Result<f64, String> {
            positive(field(row, k, what, line)?, k, what, line)
        };
        out.push(Prediction {
            variant: field(row, "variant", what, line)?.to_string(),
            core: field(row, "core", what, line)?.to_string(),
            clock_ghz: f("clock_ghz")?,
            ms: f("predicted_ms")?,
            pointwise_percent: field(row, "pointwise_percent", what, line)?
                .parse()
                .map_err(|_| format!("{what} line {line}: pointwise_percent is not a number"))?,
        });
    }
    if out.is_empty() {
        return Err(format!("{what}: no predictions"));
    }
    Ok(out)
}

/// The assumptions, as a Markdown paragraph (printed with every table).
pub const ASSUMPTIONS: &str = "**Static estimate, not a measurement.** One core at the published \
clock; every layer at the llvm-mca steady-state FLOP/cycle of its kernel's main NEON inner loop \
(pointwise and stem: the pointwise GEMM loop; depthwise, squeeze-excite, pool, classifier: the \
depthwise loop); no cache misses, tile edges, epilogues or packing. A lower bound of the \
single-core f32 latency, as good as LLVM 19's scheduling model of the core (see \
`results/neon-estimate/kernels.md`: its Cortex-A76 is the A57 model and its Apple A14 the Cyclone \
model). The paper's iPhone 12 figure is Core ML on the Neural Engine, not one CPU core.";

/// Markdown table of `preds`: one row per variant (the paper's order), one column per core, and the
/// paper's iPhone 12 latency.
pub fn latency_table(preds: &[Prediction]) -> String {
    let mut cores: Vec<(String, f64)> = Vec::new();
    for p in preds {
        if !cores.iter().any(|(c, _)| *c == p.core) {
            cores.push((p.core.clone(), p.clock_ghz));
        }
    }
    let mut headers = vec!["variant".to_string()];
    headers.extend(cores.iter().map(|(c, g)| format!("{c} @ {g} GHz (ms)")));
    headers.push("iPhone 12, Core ML (ms, paper)".into());
    let mut variants: Vec<&str> = PAPER
        .iter()
        .map(|p| p.variant)
        .filter(|v| preds.iter().any(|p| p.variant == *v))
        .collect();
    for p in preds {
        if !variants.contains(&p.variant.as_str()) {
            variants.push(&p.variant);
        }
    }
    let rows: Vec<Vec<String>> = variants
        .iter()
        .map(|v| {
            let mut r = vec![v.to_string()];
            for (c, _) in &cores {
                r.push(num(
                    preds
                        .iter()
                        .find(|p| p.variant == *v && p.core == *c)
                        .map(|p| p.ms),
                    2,
                ));
            }
            r.push(num(
                PAPER
                    .iter()
                    .find(|p| p.variant == *v)
                    .map(|p| p.iphone12_ms),
                1,
            ));
            r
        })
        .collect();
    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut right = vec![true; h.len()];
    right[0] = false;
    md_table(&h, &right, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mobile_cnn_kernels::Shape;

    const CORES: &str = "core,mcpu,clock_ghz,peak_f32_flop_per_cycle,clock_source,llvm_model\n\
        Neoverse N1,neoverse-n1,2.5,16.0,\"AWS Graviton2 (2.5 GHz)\",\"N1, two pipes\"\n\
        Cortex-A55,cortex-a55,2,16.0,x,y\n";
    const KERNELS: &str = "kernel,main,source,dtype,core,mcpu,instructions,flops,cycles,flop_per_cycle,peak,percent,bottleneck\n\
        pointwise_8x8_neon,0,a.rs:1,f32,Neoverse N1,neoverse-n1,20,64,8.0,8.0,16.0,50.0,x\n\
        pointwise_8x8_neon,1,a.rs:2,f32,Neoverse N1,neoverse-n1,90,512,32.0,16.0,16.0,100.0,\"N1UnitV0, busy\"\n\
        pointwise_8x8_neon,1,a.rs:2,f32,Cortex-A55,cortex-a55,90,512,64.0,8.0,16.0,50.0,x\n\
        pointwise_bf16_neon,1,b.rs:2,bf16,Cortex-A55,cortex-a55,90,512,,,,,\"n/a: the core lacks bf16\"\n\
        dwconv3x3_c8_neon,1,c.rs:3,f32,Neoverse N1,neoverse-n1,90,288,36.0,8.0,16.0,50.0,x\n\
        dwconv3x3_c8_neon,1,c.rs:3,f32,Cortex-A55,cortex-a55,90,288,72.0,4.0,16.0,25.0,x\n";

    fn layer(kind: LayerKind, flops: u64) -> LayerInfo {
        LayerInfo {
            name: "x".into(),
            kind,
            input: Shape::new(1, 1, 1, 1),
            output: Shape::new(1, 1, 1, 1),
            flops,
            key: "x".into(),
        }
    }

    #[test]
    fn parses_quoted_fields_and_unavailable_loops() {
        let cores = parse_cores(CORES).unwrap();
        assert_eq!(cores.len(), 2);
        assert_eq!(cores[0].label, "Neoverse N1");
        assert_eq!(cores[1].clock_ghz, 2.0);
        let loops = parse_main_loops(KERNELS).unwrap();
        assert_eq!(loops.len(), 5, "non-main rows skipped");
        assert_eq!(loops[2].flop_per_cycle, None, "n/a row has no rate");
        assert_eq!(rates(&loops, "Neoverse N1").unwrap(), (16.0, 8.0));
        // The bf16 loop is skipped: the f32 pointwise rate is taken.
        assert_eq!(rates(&loops, "Cortex-A55").unwrap(), (8.0, 4.0));
        let e = rates(&loops, "Apple").unwrap_err();
        assert!(e.contains("pointwise") && e.contains("Apple"), "{e}");
    }

    #[test]
    fn bad_numbers_and_missing_columns_are_named() {
        let e =
            parse_cores("core,mcpu,clock_ghz,peak_f32_flop_per_cycle\nA,a,fast,8\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("clock_ghz"), "{e}");
        let e = parse_cores("core,mcpu,clock_ghz,peak_f32_flop_per_cycle\nA,a,-1,8\n").unwrap_err();
        assert!(e.contains("positive"), "{e}");
        let e = parse_cores("core,mcpu\nA,a\n").unwrap_err();
        assert!(e.contains("clock_ghz"), "{e}");
        assert!(parse_cores("core,mcpu,clock_ghz,peak_f32_flop_per_cycle\n").is_err());
        let e = parse_main_loops("kernel,main\nx,1\n").unwrap_err();
        assert!(e.contains("flop_per_cycle"), "{e}");
        let e = parse_latency("variant,core\n").unwrap_err();
        assert!(e.contains("latency.csv"), "{e}");
    }

    #[test]
    fn layers_are_costed_at_their_kernel_rate() {
        let core = Core {
            label: "C".into(),
            mcpu: "c".into(),
            clock_ghz: 2.0,
            peak: 16.0,
        };
        let layers = [
            layer(LayerKind::Input, 0),
            layer(LayerKind::StemConv, 1_600_000),
            layer(LayerKind::Pointwise, 16_000_000),
            layer(LayerKind::DwConv, 800_000),
            layer(LayerKind::Se, 80_000),
            layer(LayerKind::Pool, 40_000),
            layer(LayerKind::Linear, 80_000),
        ];
        let p = predict("m1_0", &layers, &core, (16.0, 8.0));
        // pointwise + stem: 17.6e6 / 16 = 1.1e6 cycles; the rest 1.0e6 / 8 = 125e3 cycles.
        let cycles = 1.1e6 + 125e3;
        assert!((p.ms - cycles / 2e6).abs() < 1e-12, "{}", p.ms);
        assert!((p.pointwise_percent - 100.0 * 1.1e6 / cycles).abs() < 1e-9);
        let csv = latency_csv(std::slice::from_ref(&p));
        let back = parse_latency(&csv).unwrap();
        assert_eq!(back[0].variant, "m1_0");
        assert!((back[0].ms - p.ms).abs() < 1e-3);
        let t = latency_table(&back);
        assert!(
            t.contains("C @ 2 GHz (ms)") && t.contains("| m1_0 | 0.61 | 1.0 |"),
            "{t}"
        );
    }
}
