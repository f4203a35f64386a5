//! Facts about the host machine that several parts of the runtime need:
//! its cores (and binding a thread to one), its L2 cache, its memory and
//! its processor's name, and their use (CPU time, memory in use, this
//! process's resident size) for the monitor; and where xpu's data lives
//! (models, images, the task history). Owns nothing else and imports
//! nothing from the crate but its error type.

use std::path::PathBuf;

/// Number of cores the runtime may use.
///
/// ```
/// assert!(xpu::host::core_count() >= 1);
/// ```
pub fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A `Name: N kB` line of a `/proc` file, in bytes.
fn proc_kb_field(file: &str, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Total host RAM in bytes (`/proc/meminfo`), or 0 if unknown.
pub fn memory_bytes() -> usize {
    proc_kb_field("/proc/meminfo", "MemTotal").unwrap_or(0) as usize
}

/// Host RAM in use, in bytes: total less what the kernel reports available
/// (`/proc/meminfo`), or 0 if unknown.
pub fn memory_used_bytes() -> u64 {
    let total = proc_kb_field("/proc/meminfo", "MemTotal").unwrap_or(0);
    let available = proc_kb_field("/proc/meminfo", "MemAvailable").unwrap_or(total);
    total.saturating_sub(available)
}

/// Resident memory of this process in bytes (`/proc/self/status`), or 0 if
/// unknown.
///
/// ```
/// if cfg!(target_os = "linux") {
///     assert!(xpu::host::process_resident_bytes() > 0);
/// }
/// ```
pub fn process_resident_bytes() -> u64 {
    proc_kb_field("/proc/self/status", "VmRSS").unwrap_or(0)
}

/// The most resident memory this process has held (`VmHWM` in
/// `/proc/self/status`), in bytes; 0 where unknown.
///
/// ```
/// if cfg!(target_os = "linux") {
///     let now = xpu::host::process_resident_bytes();
///     assert!(xpu::host::process_peak_resident_bytes() >= now);
/// }
/// ```
pub fn process_peak_resident_bytes() -> u64 {
    proc_kb_field("/proc/self/status", "VmHWM").unwrap_or(0)
}

/// Busy and total time of every core since boot (`/proc/stat`), in clock
/// ticks; utilisation is the difference of two readings.
#[derive(Debug, Clone, Default)]
pub struct CpuTimes {
    /// `(busy, total)` per core.
    cores: Vec<(u64, u64)>,
}

impl CpuTimes {
    /// The current reading; empty where `/proc/stat` cannot be read.
    pub fn now() -> CpuTimes {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cores = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .map(|l| {
                let ticks: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                let total: u64 = ticks.iter().take(8).sum();
                // idle and iowait are the fourth and fifth fields.
                let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
                (total - idle.min(total), total)
            })
            .collect();
        CpuTimes { cores }
    }

    /// Percent busy of each core (0 to 100) between `earlier` and `self`.
    ///
    /// ```
    /// let before = xpu::host::CpuTimes::now();
    /// let after = xpu::host::CpuTimes::now();
    /// assert!(after.percent_since(&before).iter().all(|p| (0.0..=100.0).contains(p)));
    /// ```
    pub fn percent_since(&self, earlier: &CpuTimes) -> Vec<f32> {
        self.cores
            .iter()
            .zip(&earlier.cores)
            .map(|(&(busy, total), &(busy0, total0))| {
                let dt = total.saturating_sub(total0);
                if dt == 0 {
                    0.0
                } else {
                    (busy.saturating_sub(busy0) as f64 * 100.0 / dt as f64).min(100.0) as f32
                }
            })
            .collect()
    }
}

/// The processor's model name (`/proc/cpuinfo`), or the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The cores the calling thread may run on (the process's, unless the
/// thread was bound), in order: its affinity mask on Linux, else every
/// core.
///
/// ```
/// assert!(!xpu::host::allowed_cores().is_empty());
/// ```
pub fn allowed_cores() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bit set the call fills in; its size is
        // the one passed.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if unsafe { libc::sched_getaffinity(0, size, &mut set) } == 0 {
            let cores: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
                .collect();
            if !cores.is_empty() {
                return cores;
            }
        }
    }
    (0..core_count()).collect()
}

/// Binds the calling thread to `core`: the OS runs it there only. Fails on
/// systems without thread affinity (anything but Linux) and for a core the
/// process may not use.
///
/// ```
/// let core = xpu::host::allowed_cores()[0];
/// std::thread::spawn(move || {
///     let bound = xpu::host::bind_thread_to_core(core);
///     assert_eq!(bound.is_ok(), cfg!(target_os = "linux"));
///     if bound.is_ok() {
///         assert_eq!(xpu::host::allowed_cores(), vec![core]);
///     }
/// })
/// .join()
/// .unwrap();
/// ```
pub fn bind_thread_to_core(core: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "core {core} is beyond the {} an affinity mask holds",
                    libc::CPU_SETSIZE
                ),
            ));
        }
        // SAFETY: as in `allowed_cores`; `core` is within the set's size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(core, &mut set) };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if unsafe { libc::sched_setaffinity(0, size, &set) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("binding a thread to core {core} is only done on Linux"),
        ))
    }
}

/// The size in bytes of one core's level-2 cache, read from
/// `/sys/devices/system/cpu/cpu0/cache`, or `None` where the system does
/// not say.
///
/// ```
/// if let Some(bytes) = xpu::host::l2_cache_bytes() {
///     assert!(bytes >= 1024);
/// }
/// ```
pub fn l2_cache_bytes() -> Option<usize> {
    let caches = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    caches.flatten().find_map(|entry| {
        let field = |name: &str| std::fs::read_to_string(entry.path().join(name)).ok();
        let level = field("level")?;
        let kind = field("type")?;
        if level.trim() != "2" || kind.trim() == "Instruction" {
            return None;
        }
        parse_cache_size(field("size")?.trim())
    })
}

/// A cache size as sysfs writes it: `1024K`, `2M` or plain bytes.
fn parse_cache_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let multiplier = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        _ => return None,
    };
    digits.parse::<usize>().ok().map(|n| n * multiplier)
}

/// Where `scripts/fetch-models.sh` puts models and images:
/// `$XPU_DATA_DIR`, else `$XDG_DATA_HOME/xpu`, else `~/.local/share/xpu`.
pub fn data_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    var("XPU_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| var("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("xpu")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/share/xpu")))
        .unwrap_or_else(|| PathBuf::from("xpu-data"))
}

/// A fetched file (`images/astronaut.png`, ...), or an error that says how
/// to fetch it.
pub fn data_file(relative: &str) -> crate::Result<PathBuf> {
    let path = data_dir().join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(crate::Error::Io(format!(
            "{} is missing: run scripts/fetch-models.sh to fetch it",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cache_size;

    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("1024K"), Some(1 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("65536"), Some(65536));
        assert_eq!(parse_cache_size("1G"), None);
        assert_eq!(parse_cache_size("K"), None);
    }
}
