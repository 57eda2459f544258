//! The pure pieces of the benchmark report: the paper's figures as data, the peers file (JSONL),
//! the comparison with other engines and the verdict on the speed targets, and Markdown tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// The paper's figures for one variant (RepViT, CVPR 2024; timm's fused weights).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paper {
    /// Variant name as in timm without `repvit_` (`m1_0`).
    pub variant: &'static str,
    /// Core ML latency on iPhone 12 (iOS 16), batch 1, 224x224, milliseconds.
    pub iphone12_ms: f64,
    /// Parameters after re-parameterisation, millions (not published for the legacy variants).
    pub params_m: Option<f64>,
    /// Multiply-accumulates, billions (not published for the legacy variants).
    pub gmacs: Option<f64>,
}

/// Every variant's published figures, in timm's order.
pub const PAPER: [Paper; 8] = [
    Paper {
        variant: "m0_9",
        iphone12_ms: 0.9,
        params_m: Some(5.07),
        gmacs: Some(0.816),
    },
    Paper {
        variant: "m1_0",
        iphone12_ms: 1.0,
        params_m: Some(6.81),
        gmacs: Some(1.106),
    },
    Paper {
        variant: "m1_1",
        iphone12_ms: 1.1,
        params_m: Some(8.24),
        gmacs: Some(1.337),
    },
    Paper {
        variant: "m1_5",
        iphone12_ms: 1.5,
        params_m: Some(14.05),
        gmacs: Some(2.274),
    },
    Paper {
        variant: "m2_3",
        iphone12_ms: 2.3,
        params_m: Some(22.93),
        gmacs: Some(4.516),
    },
    Paper {
        variant: "m1",
        iphone12_ms: 0.9,
        params_m: None,
        gmacs: None,
    },
    Paper {
        variant: "m2",
        iphone12_ms: 1.1,
        params_m: None,
        gmacs: None,
    },
    Paper {
        variant: "m3",
        iphone12_ms: 1.3,
        params_m: None,
        gmacs: None,
    },
];

/// Our engine's name in the peers file.
pub const OURS: &str = "repvit-rs";

/// One timing of the peers file.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// `repvit-rs`, `onnxruntime`, `openvino`, `pytorch`, ...
    pub engine: String,
    /// The engine's version.
    pub engine_version: String,
    /// Variant without `repvit_` (`m1_0`).
    pub variant: String,
    /// Threads the engine was allowed.
    pub threads: usize,
    /// Images per call.
    pub batch: usize,
    /// Image height and width.
    pub size: usize,
    /// Median latency, milliseconds.
    pub median_ms: f64,
    /// Minimum latency, milliseconds.
    pub min_ms: f64,
    /// Timed iterations.
    pub iters: usize,
    /// ISA (ours only).
    pub isa: Option<String>,
}

/// A parsed peers file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peers {
    /// The `"engine": "machine"` line, if any.
    pub machine: Option<Value>,
    /// Every timing, in file order.
    pub rows: Vec<PeerRow>,
}

/// Parses the peers JSONL (one object per line; blank lines ignored). Errors name the line and
/// the field.
pub fn parse_peers(text: &str) -> Result<Peers, String> {
    let mut peers = Peers::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |what: String| format!("line {}: {what}", i + 1);
        let v: Value = serde_json::from_str(line).map_err(|e| at(format!("not JSON ({e})")))?;
        let s = |k: &str| -> Result<String, String> {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| at(format!("expected a string field \"{k}\"")))
        };
        let engine = s("engine")?;
        if engine == "machine" {
            peers.machine = Some(v);
            continue;
        }
        let u = |k: &str| -> Result<usize, String> {
            v.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| at(format!("expected a non-negative integer field \"{k}\"")))
        };
        let f = |k: &str| -> Result<f64, String> {
            v.get(k)
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| at(format!("expected a positive number field \"{k}\"")))
        };
        let variant = s("variant")?;
        peers.rows.push(PeerRow {
            engine_version: s("engine_version").unwrap_or_default(),
            variant: variant
                .strip_prefix("repvit_")
                .unwrap_or(&variant)
                .to_string(),
            threads: u("threads")?,
            batch: u("batch")?,
            size: u("size")?,
            median_ms: f("median_ms")?,
            min_ms: f("min_ms")?,
            iters: u("iters")?,
            isa: v.get("isa").and_then(Value::as_str).map(str::to_string),
            engine,
        });
    }
    Ok(peers)
}

/// Every engine's median for one variant at one thread count (batch 1 and the first size seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Variant.
    pub variant: String,
    /// Threads.
    pub threads: usize,
    /// Our median, if measured in the peer run.
    pub ours_ms: Option<f64>,
    /// Other engines' medians, by engine name.
    pub others: BTreeMap<String, f64>,
}

impl Comparison {
    /// Ours divided by `engine`'s median (below 1: we are faster).
    pub fn ratio(&self, engine: &str) -> Option<f64> {
        Some(self.ours_ms? / self.others.get(engine)?)
    }

    /// The fastest of `engines` (all other engines when empty) that were measured.
    pub fn fastest(&self, engines: &[&str]) -> Option<(&str, f64)> {
        self.others
            .iter()
            .filter(|(e, _)| engines.is_empty() || engines.contains(&e.as_str()))
            .map(|(e, &m)| (e.as_str(), m))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

/// Groups batch-1 rows by (variant, threads), variants in `order` first (then any others).
pub fn comparisons(peers: &Peers, order: &[&str]) -> Vec<Comparison> {
    let mut map: BTreeMap<(usize, String, usize), Comparison> = BTreeMap::new();
    for r in peers.rows.iter().filter(|r| r.batch == 1) {
        let rank = order
            .iter()
            .position(|v| *v == r.variant)
            .unwrap_or(order.len());
        let c = map
            .entry((rank, r.variant.clone(), r.threads))
            .or_insert_with(|| Comparison {
                variant: r.variant.clone(),
                threads: r.threads,
                ours_ms: None,
                others: BTreeMap::new(),
            });
        if r.engine == OURS {
            c.ours_ms = Some(r.median_ms);
        } else {
            c.others.insert(r.engine.clone(), r.median_ms);
        }
    }
    map.into_values().collect()
}

/// Whether one (variant, threads) meets its speed target.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Variant.
    pub variant: String,
    /// Threads.
    pub threads: usize,
    /// Allowed ratio of ours to the fastest reference engine (1.0 for M1.0, 1.1 for the others).
    pub limit: f64,
    /// Which engines the target names.
    pub against: Vec<String>,
    /// Our median and the fastest reference engine's, when both were measured.
    pub ours_ms: Option<f64>,
    /// The fastest reference engine and its median.
    pub fastest: Option<(String, f64)>,
}

impl Verdict {
    /// Ours / fastest, when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.ours_ms? / self.fastest.as_ref()?.1)
    }

    /// `Some(true)` when met, `Some(false)` when not, `None` when not measured.
    pub fn met(&self) -> Option<bool> {
        self.ratio().map(|r| r <= self.limit + 1e-12)
    }

    /// One sentence: met or not, with the shortfall.
    pub fn sentence(&self) -> String {
        let what = if self.limit == 1.0 {
            format!("at or below {}", self.against.join(" and "))
        } else {
            format!("within {:.1}x of the fastest other engine", self.limit)
        };
        let head = format!("{} at {} thread(s), {what}", self.variant, self.threads);
        match (self.ours_ms, &self.fastest, self.ratio()) {
            (Some(o), Some((e, m)), Some(r)) if r <= self.limit + 1e-12 => {
                format!("{head}: **met** ({o:.2} ms vs {e} {m:.2} ms, ratio {r:.3}).")
            }
            (Some(o), Some((e, m)), Some(r)) => {
                let goal = m * self.limit;
                format!(
                    "{head}: **not met** ({o:.2} ms vs {e} {m:.2} ms, ratio {r:.3}; {:.2} ms ({:.1} %) above the {goal:.2} ms goal).",
                    o - goal,
                    100.0 * (o / goal - 1.0)
                )
            }
            _ => format!("{head}: not measured in the peers file."),
        }
    }
}

/// The issue's targets: M1.0 at or below OpenVINO and ONNX Runtime at 1 and 2 threads; every other
/// variant within 1.1x of the fastest other engine, at every thread count measured.
pub fn verdicts(comps: &[Comparison]) -> Vec<Verdict> {
    let mut out = Vec::new();
    for v in PAPER.iter().map(|p| p.variant) {
        let threads: Vec<usize> = if v == "m1_0" {
            vec![1, 2]
        } else {
            let mut t: Vec<usize> = comps
                .iter()
                .filter(|c| c.variant == v)
                .map(|c| c.threads)
                .collect();
            t.dedup();
            t
        };
        for t in threads {
            let c = comps.iter().find(|c| c.variant == v && c.threads == t);
            let (limit, against): (f64, Vec<&str>) = if v == "m1_0" {
                (1.0, vec!["openvino", "onnxruntime"])
            } else {
                (1.1, vec![])
            };
            out.push(Verdict {
                variant: v.to_string(),
                threads: t,
                limit,
                against: if against.is_empty() {
                    c.map(|c| c.others.keys().cloned().collect())
                        .unwrap_or_default()
                } else {
                    against.iter().map(|s| s.to_string()).collect()
                },
                ours_ms: c.and_then(|c| c.ours_ms),
                fastest: c
                    .and_then(|c| c.fastest(&against))
                    .map(|(e, m)| (e.to_string(), m)),
            });
        }
    }
    out
}

/// A Markdown table; `right[i]` right-aligns column `i`.
pub fn md_table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", headers.join(" | "));
    let seps: Vec<&str> = (0..headers.len())
        .map(|i| {
            if right.get(i).copied().unwrap_or(false) {
                "---:"
            } else {
                "---"
            }
        })
        .collect();
    let _ = writeln!(s, "|{}|", seps.join("|"));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// `v` with `d` decimals, or `-` when absent or not finite.
pub fn num(v: Option<f64>, d: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.d$}"),
        _ => "-".into(),
    }
}

/// Percent of the peak: `gflops / (peak * threads)`.
pub fn percent_of_peak(gflops: f64, peak_one_core: f64, threads: usize) -> Option<f64> {
    (peak_one_core > 0.0 && threads > 0).then(|| 100.0 * gflops / (peak_one_core * threads as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAKE: &str = r#"{"engine":"machine","cpu":"test cpu","cores":2}
{"engine":"repvit-rs","engine_version":"0.1.0","variant":"m1_0","threads":1,"batch":1,"size":224,"median_ms":20.0,"min_ms":19.0,"iters":50,"isa":"avx512"}
{"engine":"onnxruntime","engine_version":"1.20","variant":"repvit_m1_0","threads":1,"batch":1,"size":224,"median_ms":19.9,"min_ms":19.5,"iters":50}
{"engine":"openvino","engine_version":"2025.1","variant":"m1_0","threads":1,"batch":1,"size":224,"median_ms":18.6,"min_ms":18.0,"iters":50}

{"engine":"repvit-rs","engine_version":"0.1.0","variant":"m1_0","threads":2,"batch":1,"size":224,"median_ms":10.0,"min_ms":9.0,"iters":50,"isa":"avx512"}
{"engine":"openvino","engine_version":"2025.1","variant":"m1_0","threads":2,"batch":1,"size":224,"median_ms":10.6,"min_ms":10.0,"iters":50}
{"engine":"onnxruntime","engine_version":"1.20","variant":"m1_0","threads":2,"batch":1,"size":224,"median_ms":11.7,"min_ms":11.0,"iters":50}
{"engine":"repvit-rs","engine_version":"0.1.0","variant":"m2_3","threads":1,"batch":1,"size":224,"median_ms":80.0,"min_ms":79.0,"iters":20,"isa":"avx512"}
{"engine":"pytorch","engine_version":"2.5","variant":"m2_3","threads":1,"batch":1,"size":224,"median_ms":75.0,"min_ms":74.0,"iters":20}
{"engine":"onnxruntime","engine_version":"1.20","variant":"m2_3","threads":1,"batch":1,"size":224,"median_ms":70.0,"min_ms":69.0,"iters":20}
"#;

    #[test]
    fn peers_parse_group_and_judge() {
        let p = parse_peers(FAKE).unwrap();
        assert_eq!(p.machine.as_ref().unwrap()["cpu"], "test cpu");
        assert_eq!(p.rows.len(), 9);
        assert_eq!(p.rows[1].variant, "m1_0", "repvit_ prefix stripped");
        assert_eq!(p.rows[0].isa.as_deref(), Some("avx512"));
        assert_eq!(p.rows[1].isa, None);
        let order: Vec<&str> = PAPER.iter().map(|p| p.variant).collect();
        let c = comparisons(&p, &order);
        assert_eq!(
            c.iter()
                .map(|c| (c.variant.as_str(), c.threads))
                .collect::<Vec<_>>(),
            [("m1_0", 1), ("m1_0", 2), ("m2_3", 1)]
        );
        assert!((c[0].ratio("openvino").unwrap() - 20.0 / 18.6).abs() < 1e-12);
        assert_eq!(c[0].fastest(&[]), Some(("openvino", 18.6)));
        assert_eq!(c[0].fastest(&["onnxruntime"]), Some(("onnxruntime", 19.9)));
        assert_eq!(c[0].ratio("pytorch"), None);

        let v = verdicts(&c);
        let m10: Vec<&Verdict> = v.iter().filter(|v| v.variant == "m1_0").collect();
        assert_eq!(m10.len(), 2);
        // 1 thread: 20.0 vs OpenVINO 18.6 -> not met, 1.4 ms short.
        assert_eq!(m10[0].met(), Some(false));
        let s = m10[0].sentence();
        assert!(s.contains("not met") && s.contains("1.40 ms"), "{s}");
        // 2 threads: 10.0 vs 10.6 -> met.
        assert_eq!(m10[1].met(), Some(true));
        assert!(m10[1].sentence().contains("**met**"));
        // M2.3: 80 vs fastest 70 (ONNX Runtime): 1.143 > 1.1 -> not met, goal 77 ms.
        let m23 = v.iter().find(|v| v.variant == "m2_3").unwrap();
        assert_eq!(m23.fastest, Some(("onnxruntime".into(), 70.0)));
        assert_eq!(m23.met(), Some(false));
        assert!(
            m23.sentence().contains("77.00 ms goal"),
            "{}",
            m23.sentence()
        );
        // Variants absent from the file have no verdicts, except M1.0's named targets.
        assert!(!v.iter().any(|v| v.variant == "m0_9"));
    }

    #[test]
    fn within_limit_is_met_and_missing_is_not_measured() {
        let c = vec![Comparison {
            variant: "m0_9".into(),
            threads: 2,
            ours_ms: Some(10.9),
            others: [("openvino".to_string(), 10.0)].into_iter().collect(),
        }];
        let v = verdicts(&c);
        let m09 = v.iter().find(|v| v.variant == "m0_9").unwrap();
        assert_eq!(m09.met(), Some(true));
        let m10 = v.iter().find(|v| v.variant == "m1_0").unwrap();
        assert_eq!(m10.met(), None);
        assert!(m10.sentence().contains("not measured"));
    }

    #[test]
    fn bad_peer_lines_name_line_and_field() {
        let e = parse_peers("{\"engine\":\"x\"}\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("variant"), "{e}");
        let e = parse_peers("\n{not json\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("not JSON"), "{e}");
        let e = parse_peers(
            r#"{"engine":"x","variant":"m1_0","threads":1,"batch":1,"size":224,"median_ms":-1,"min_ms":1,"iters":1}"#,
        )
        .unwrap_err();
        assert!(e.contains("median_ms"), "{e}");
    }

    #[test]
    fn tables_and_numbers() {
        let t = md_table(
            &["a", "b"],
            &[false, true],
            &[vec!["x".into(), "1.0".into()]],
        );
        assert_eq!(t, "| a | b |\n|---|---:|\n| x | 1.0 |\n");
        assert_eq!(num(Some(1.23456), 2), "1.23");
        assert_eq!(num(None, 2), "-");
        assert_eq!(num(Some(f64::NAN), 1), "-");
        assert_eq!(percent_of_peak(57.5, 115.0, 1), Some(50.0));
        assert_eq!(percent_of_peak(115.0, 115.0, 2), Some(50.0));
        assert_eq!(percent_of_peak(1.0, 0.0, 1), None);
        assert_eq!(PAPER.len(), repvit::VARIANTS.len());
        for (p, v) in PAPER.iter().zip(repvit::VARIANTS.iter()) {
            assert_eq!(p.variant, v.name);
        }
    }
}
