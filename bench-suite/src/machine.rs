//! A description of the machine that produced a benchmark record: CPU model, cores, ISA tiers,
//! compiler and commit.

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
}

impl Machine {
    /// Reads the description of this machine.
    pub fn detect() -> Machine {
        Machine {
            cpu: cpu_model(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            isas: Isa::available(),
            rustc: env!("BENCH_RUSTC_VERSION").to_string(),
            commit: git_commit(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
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
            "- CPU: {}\n- Logical cores: {}\n- ISA tiers available: {}\n- OS/arch: {}\n- rustc: {}\n- Commit: {}\n",
            self.cpu,
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

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
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
}
