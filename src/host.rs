//! Facts about the host machine that several parts of the runtime need:
//! its cores, its memory and its processor's name. Owns nothing else and
//! imports nothing from the crate.

/// Number of cores the runtime may use.
///
/// ```
/// assert!(xpu::host::core_count() >= 1);
/// ```
pub fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Total host RAM in bytes (`/proc/meminfo`), or 0 if unknown.
pub fn memory_bytes() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
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
