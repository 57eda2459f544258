//! A description of the machine that produced a benchmark record: CPU model, cores, ISA tiers,
//! compiler and commit. On ARM Linux, where `/proc/cpuinfo` has no model name, the cores are named
//! from their `CPU implementer` and `CPU part` fields (MIDR_EL1 values, as listed in Linux's
//! `arch/arm64/include/asm/cputype.h`), grouped into clusters (big.LITTLE) by part and by
//! `cpufreq/cpuinfo_max_freq`, with the SIMD features the kernel reports (`Features`, from
//! `getauxval(AT_HWCAP/AT_HWCAP2)`).

use mobile_cnn_kernels::Isa;

/// What `results/` records beside every figure.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name as the OS reports it.
    pub cpu: String,
    /// Logical CPUs the process may use.
    pub cores: usize,
    /// Instruction-set tiers available (widest last).
    pub isas: Vec<Isa>,
    /// `rustc -V` of the compiler that built the benchmarks.
    pub rustc: String,
    /// `git describe`-style commit of the working tree (with `-dirty` when it has changes).
    pub commit: String,
    /// Operating system and architecture.
    pub os: String,
    /// ARM only: the clusters and SIMD features (see [`ArmCpuInfo::describe`]).
    pub arm: Option<String>,
}

impl Machine {
    /// Reads the description of this machine.
    pub fn detect() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let arm = ArmCpuInfo::parse(&info);
        let cpu = match &arm {
            Some(a) => a.model(&info),
            // An aarch64 build that sees no ARM cpuinfo: qemu-user shows the host's.
            None if cfg!(target_arch = "aarch64") => format!(
                "unknown aarch64 CPU (/proc/cpuinfo describes {}: emulated?)",
                cpu_model(&info)
            ),
            None => cpu_model(&info),
        };
        let arm = match arm {
            Some(a) => Some(a.describe(max_freq_khz)),
            None if cfg!(target_arch = "aarch64") => Some(format!(
                "SIMD features (HWCAP): {}",
                hwcap_features().join(" ")
            )),
            None => None,
        };
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            isas: Isa::available(),
            rustc: env!("BENCH_RUSTC_VERSION").to_string(),
            commit: git_commit(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            arm,
        }
    }

    /// A file-name-safe slug of the CPU model, e.g. `amd-epyc`.
    pub fn cpu_slug(&self) -> String {
        let mut s = String::new();
        for ch in self.cpu.chars() {
            if ch.is_ascii_alphanumeric() {
                s.push(ch.to_ascii_lowercase());
            } else if !s.ends_with('-') {
                s.push('-');
            }
        }
        s.trim_matches('-').chars().take(40).collect()
    }

    /// The description as a Markdown list.
    pub fn to_markdown(&self) -> String {
        format!(
            "- CPU: {}\n{}- Logical cores: {}\n- ISA tiers available: {}\n- OS/arch: {}\n- rustc: {}\n- Commit: {}\n",
            self.cpu,
            self.arm
                .as_ref()
                .map_or(String::new(), |a| format!("- ARM cores: {a}\n")),
            self.cores,
            self.isas
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", "),
            self.os,
            self.rustc,
            self.commit
        )
    }
}

fn cpu_model(info: &str) -> String {
    for key in ["model name", "Model", "Hardware", "CPU part"] {
        if let Some(line) = info
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            && let Some(v) = line.split_once(':').map(|(_, v)| v.trim())
            && !v.is_empty()
        {
            return v.to_string();
        }
    }
    "unknown CPU".into()
}

/// One logical CPU of an ARM `/proc/cpuinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArmCpu {
    /// `processor` number (the index of `/sys/devices/system/cpu/cpuN`).
    pub processor: usize,
    /// `CPU implementer` (MIDR_EL1 bits 31:24), e.g. 0x41 for Arm.
    pub implementer: u32,
    /// `CPU part` (MIDR_EL1 bits 15:4), e.g. 0xd0b for Cortex-A76.
    pub part: u32,
}

impl ArmCpu {
    /// The core's name, e.g. `Cortex-A76`, or `implementer 0x.. part 0x...` when not listed.
    pub fn name(&self) -> String {
        part_name(self.implementer, self.part).map_or_else(
            || {
                format!(
                    "implementer {:#04x} part {:#05x}",
                    self.implementer, self.part
                )
            },
            str::to_string,
        )
    }
}

/// The name of an ARM core from its MIDR implementer and part numbers (the values of Linux's
/// `arch/arm64/include/asm/cputype.h` and Arm's technical reference manuals); `None` if not listed.
pub fn part_name(implementer: u32, part: u32) -> Option<&'static str> {
    Some(match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0a) => "Cortex-A75",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse N1",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd40) => "Neoverse V1",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd44) => "Cortex-X1",
        (0x41, 0xd46) => "Cortex-A510",
        (0x41, 0xd47) => "Cortex-A710",
        (0x41, 0xd48) => "Cortex-X2",
        (0x41, 0xd49) => "Neoverse N2",
        (0x41, 0xd4b) => "Cortex-A78C",
        (0x41, 0xd4d) => "Cortex-A715",
        (0x41, 0xd4e) => "Cortex-X3",
        (0x41, 0xd4f) => "Neoverse V2",
        (0x41, 0xd80) => "Cortex-A520",
        (0x41, 0xd81) => "Cortex-A720",
        (0x41, 0xd82) => "Cortex-X4",
        (0x51, 0x804) => "Kryo 4xx Gold (Cortex-A76)",
        (0x51, 0x805) => "Kryo 4xx/5xx Silver (Cortex-A55)",
        (0x61, 0x022) => "Apple M1 Icestorm",
        (0x61, 0x023) => "Apple M1 Firestorm",
        (0x61, 0x032) => "Apple M2 Blizzard",
        (0x61, 0x033) => "Apple M2 Avalanche",
        (0xc0, 0xac3) => "Ampere-1",
        _ => return None,
    })
}

/// The SIMD-related HWCAP names of `/proc/cpuinfo`'s `Features` line that matter to these kernels:
/// NEON (`asimd`), f16 arithmetic (`fphp`, `asimdhp`), dot product (`asimddp`), f16 multiply-add
/// long (`asimdfhm`), bf16, int8 matrix multiply (`i8mm`), SVE and SVE2.
pub const SIMD_FEATURES: [&str; 9] = [
    "asimd", "fphp", "asimdhp", "asimddp", "asimdfhm", "bf16", "i8mm", "sve", "sve2",
];

/// What an ARM Linux `/proc/cpuinfo` says about the cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmCpuInfo {
    /// Every logical CPU with an implementer and a part, in file order.
    pub cpus: Vec<ArmCpu>,
    /// [`SIMD_FEATURES`] present in every CPU's `Features` line, in that order.
    pub features: Vec<&'static str>,
}

impl ArmCpuInfo {
    /// Parses the text of `/proc/cpuinfo`; `None` when it describes no ARM core (another
    /// architecture, or qemu-user showing the host's file).
    pub fn parse(text: &str) -> Option<ArmCpuInfo> {
        let mut cpus = Vec::new();
        let mut features: Option<Vec<&'static str>> = None;
        for block in text.split("\n\n") {
            let get = |key: &str| {
                block.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == key).then(|| v.trim())
                })
            };
            let hex = |key: &str| {
                get(key).and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            };
            let (Some(processor), Some(implementer), Some(part)) = (
                get("processor").and_then(|v| v.parse().ok()),
                hex("CPU implementer"),
                hex("CPU part"),
            ) else {
                continue;
            };
            cpus.push(ArmCpu {
                processor,
                implementer,
                part,
            });
            let have: Vec<&str> = get("Features").unwrap_or("").split_whitespace().collect();
            let these: Vec<&'static str> = SIMD_FEATURES
                .iter()
                .copied()
                .filter(|f| have.contains(f))
                .collect();
            features = Some(match features {
                None => these,
                Some(f) => f.into_iter().filter(|x| these.contains(x)).collect(),
            });
        }
        (!cpus.is_empty()).then(|| ArmCpuInfo {
            cpus,
            features: features.unwrap_or_default(),
        })
    }

    /// Clusters: CPUs of the same core and maximum clock, as (name, max kHz if known, count), the
    /// fastest first. `max_khz(processor)` reads `cpufreq/cpuinfo_max_freq`.
    pub fn clusters(
        &self,
        max_khz: impl Fn(usize) -> Option<u64>,
    ) -> Vec<(String, Option<u64>, usize)> {
        let mut out: Vec<(String, Option<u64>, usize)> = Vec::new();
        for c in &self.cpus {
            let (name, f) = (c.name(), max_khz(c.processor));
            match out.iter_mut().find(|(n, g, _)| *n == name && *g == f) {
                Some(e) => e.2 += 1,
                None => out.push((name, f, 1)),
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.1));
        out
    }

    /// The CPU model line: the distinct cores, fastest cluster first (e.g. `Cortex-A76 + Cortex-A55`),
    /// then the board from the `Model` or `Hardware` field when present.
    pub fn model(&self, text: &str) -> String {
        let mut names: Vec<String> = Vec::new();
        for (n, _, _) in self.clusters(max_freq_khz) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let board = ["Model", "Hardware"].iter().find_map(|key| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
            })
        });
        match board {
            Some(b) => format!("{} ({b})", names.join(" + ")),
            None => names.join(" + "),
        }
    }

    /// Clusters and features, e.g. `4x Cortex-A76 @ 2.40 GHz max + 4x Cortex-A55 @ 1.80 GHz max;
    /// SIMD features: asimd fphp asimdhp asimddp`.
    pub fn describe(&self, max_khz: impl Fn(usize) -> Option<u64>) -> String {
        let clusters: Vec<String> = self
            .clusters(max_khz)
            .into_iter()
            .map(|(n, f, count)| match f {
                Some(k) => format!("{count}x {n} @ {:.2} GHz max", k as f64 / 1e6),
                None => format!("{count}x {n}"),
            })
            .collect();
        format!(
            "{}; SIMD features: {}",
            clusters.join(" + "),
            if self.features.is_empty() {
                "none listed".to_string()
            } else {
                self.features.join(" ")
            }
        )
    }
}

/// `cpuinfo_max_freq` of one CPU in kHz, if the kernel exposes cpufreq.
fn max_freq_khz(cpu: usize) -> Option<u64> {
    std::fs::read_to_string(format!(
        "/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"
    ))
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// The [`SIMD_FEATURES`] this process may use, from the auxiliary vector (std reads
/// `getauxval(AT_HWCAP/AT_HWCAP2)`): what an emulator offers even when its `/proc/cpuinfo` is the
/// host's. Empty off aarch64.
pub fn hwcap_features() -> Vec<&'static str> {
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        let all = [
            ("asimd", has!("neon")),
            ("fphp", has!("fp16")),
            ("asimdhp", has!("fp16")),
            ("asimddp", has!("dotprod")),
            ("asimdfhm", has!("fhm")),
            ("bf16", has!("bf16")),
            ("i8mm", has!("i8mm")),
            ("sve", has!("sve")),
            ("sve2", has!("sve2")),
        ];
        all.into_iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n)
            .collect()
    }
    #[cfg(not(target_arch = "aarch64"))]
    Vec::new()
}

fn git_commit() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        None => "unknown".into(),
    }
}

/// Today's UTC date as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Civil-from-days (proleptic Gregorian), after Howard Hinnant's published algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_well_formed_and_slug_is_safe() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
        let m = Machine {
            cpu: "AMD EPYC 9R14 96-Core Processor".into(),
            ..Machine::detect()
        };
        assert_eq!(m.cpu_slug(), "amd-epyc-9r14-96-core-processor");
    }

    fn sample(name: &str) -> String {
        let p = format!("{}/tests/data/cpuinfo/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn big_little_clusters_by_part_and_by_max_clock() {
        let text = sample("rk3588.txt");
        let a = ArmCpuInfo::parse(&text).unwrap();
        assert_eq!(a.cpus.len(), 8);
        assert_eq!(a.cpus[0].name(), "Cortex-A55");
        assert_eq!(a.cpus[7].name(), "Cortex-A76");
        // RK3588: cpu0-3 A55 at 1.8 GHz, cpu4-5 and cpu6-7 A76 at 2.4 GHz.
        let freq = |cpu: usize| Some(if cpu < 4 { 1_800_000 } else { 2_400_000 });
        assert_eq!(
            a.describe(freq),
            "4x Cortex-A76 @ 2.40 GHz max + 4x Cortex-A55 @ 1.80 GHz max; \
             SIMD features: asimd fphp asimdhp asimddp"
        );
        // Same part at different clocks (a prime core) is a cluster of its own.
        let prime = |cpu: usize| Some(if cpu == 7 { 2_600_000 } else { 2_400_000 });
        let c = a.clusters(prime);
        assert_eq!(c[0], ("Cortex-A76".to_string(), Some(2_600_000), 1));
        assert_eq!(c.len(), 3);
        // Without cpufreq the parts alone separate the clusters.
        assert_eq!(
            a.describe(|_| None),
            "4x Cortex-A55 + 4x Cortex-A76; SIMD features: asimd fphp asimdhp asimddp"
        );
    }

    #[test]
    fn common_parts_are_named_and_board_model_kept() {
        let pi = sample("raspberry-pi-5.txt");
        let a = ArmCpuInfo::parse(&pi).unwrap();
        assert_eq!(
            a.cpus.len(),
            4,
            "the trailing Revision/Model block is no CPU"
        );
        assert!(
            a.model(&pi).ends_with("(Raspberry Pi 5 Model B Rev 1.0)"),
            "{}",
            a.model(&pi)
        );
        for (file, name, feats) in [
            ("graviton2.txt", "Neoverse N1", "asimd fphp asimdhp asimddp"),
            (
                "graviton3.txt",
                "Neoverse V1",
                "asimd fphp asimdhp asimddp asimdfhm bf16 i8mm sve",
            ),
            (
                "apple-m1-asahi.txt",
                "Apple M1 Icestorm",
                "asimd fphp asimdhp asimddp asimdfhm",
            ),
        ] {
            let a = ArmCpuInfo::parse(&sample(file)).unwrap();
            assert_eq!(a.cpus[0].name(), name, "{file}");
            assert_eq!(a.features.join(" "), feats, "{file}");
        }
        let m1 = ArmCpuInfo::parse(&sample("apple-m1-asahi.txt")).unwrap();
        assert_eq!(m1.cpus[4].name(), "Apple M1 Firestorm");
        for (imp, part, name) in [
            (0x41, 0xd03, "Cortex-A53"),
            (0x41, 0xd41, "Cortex-A78"),
            (0x41, 0xd44, "Cortex-X1"),
        ] {
            assert_eq!(part_name(imp, part), Some(name));
        }
        let unknown = ArmCpu {
            processor: 0,
            implementer: 0x42,
            part: 0x516,
        };
        assert_eq!(unknown.name(), "implementer 0x42 part 0x516");
    }

    #[test]
    fn features_are_those_every_cpu_has() {
        let mut text = sample("graviton3.txt");
        // A second core without SVE and bf16: only the common features remain.
        text = text.replacen(" sve ", " ", 1).replacen(" bf16 ", " ", 1);
        let a = ArmCpuInfo::parse(&text).unwrap();
        assert_eq!(
            a.features.join(" "),
            "asimd fphp asimdhp asimddp asimdfhm i8mm"
        );
    }

    #[test]
    fn x86_and_empty_cpuinfo_are_not_arm() {
        assert_eq!(ArmCpuInfo::parse(&sample("x86-epyc.txt")), None);
        assert_eq!(ArmCpuInfo::parse(""), None);
        assert_eq!(
            cpu_model(&sample("x86-epyc.txt")),
            "AMD EPYC 9R14 96-Core Processor"
        );
    }
}
