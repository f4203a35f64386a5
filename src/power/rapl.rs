//! RAPL: the package energy counters Linux exposes under
//! `/sys/class/powercap` (`intel-rapl:N`, also used for AMD's counters),
//! read where they are readable. Absent or unreadable counters are normal
//! (containers, virtual machines, this project's CI): energy is then
//! modelled, and says so.

use std::path::{Path, PathBuf};

/// One package domain's counter.
#[derive(Debug, Clone)]
struct Domain {
    energy: PathBuf,
    /// Microjoules at which the counter wraps to 0.
    range_uj: u64,
}

/// The package counters of the host, and their readings at a start.
#[derive(Debug, Clone)]
pub struct Rapl {
    domains: Vec<Domain>,
    start_uj: Vec<u64>,
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Rapl {
    /// The counters under `/sys/class/powercap`, if any can be read.
    pub fn open() -> Option<Rapl> {
        Rapl::open_at(Path::new("/sys/class/powercap"))
    }

    /// The package domains (`intel-rapl:N`, not their `intel-rapl:N:M`
    /// subdomains) under `root` whose `energy_uj` reads, started now.
    pub fn open_at(root: &Path) -> Option<Rapl> {
        let mut domains: Vec<Domain> = std::fs::read_dir(root)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("intel-rapl:") && name.matches(':').count() == 1
            })
            .filter_map(|e| {
                let dir = e.path();
                let range_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX);
                let energy = dir.join("energy_uj");
                read_u64(&energy).map(|_| Domain { energy, range_uj })
            })
            .collect();
        domains.sort_by(|a, b| a.energy.cmp(&b.energy));
        if domains.is_empty() {
            return None;
        }
        let start_uj = domains
            .iter()
            .map(|d| read_u64(&d.energy).unwrap_or(0))
            .collect();
        Some(Rapl { domains, start_uj })
    }

    /// Joules used by every package since [`Rapl::open`], counting one
    /// wrap of each counter; `None` if a counter stopped reading.
    pub fn joules(&self) -> Option<f64> {
        let mut total = 0u64;
        for (d, &start) in self.domains.iter().zip(&self.start_uj) {
            let now = read_u64(&d.energy)?;
            total += if now >= start {
                now - start
            } else {
                d.range_uj.saturating_sub(start) + now
            };
        }
        Some(total as f64 * 1e-6)
    }

    /// How many package domains it reads.
    pub fn packages(&self) -> usize {
        self.domains.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(root: &Path, name: &str, energy: u64, range: u64) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn packages_are_summed_across_a_wrap_and_subdomains_are_left_out() {
        let root = std::env::temp_dir().join(format!("xpu-rapl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        domain(&root, "intel-rapl:0", 1_000_000, 10_000_000);
        domain(&root, "intel-rapl:1", 9_500_000, 10_000_000);
        domain(&root, "intel-rapl:0:0", 5, 10_000_000);
        let rapl = Rapl::open_at(&root).unwrap();
        assert_eq!(rapl.packages(), 2);
        domain(&root, "intel-rapl:0", 3_000_000, 10_000_000);
        domain(&root, "intel-rapl:1", 500_000, 10_000_000);
        // 2 J on package 0; 0.5 J to the wrap and 0.5 J after it on package 1.
        assert!((rapl.joules().unwrap() - 3.0).abs() < 1e-9);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(Rapl::open_at(&root).is_none());
    }
}
