//! The profiler's clock. Where the CPU's time-stamp counter runs at a
//! constant rate (x86_64 with `constant_tsc` and `nonstop_tsc`), a reading
//! costs a few nanoseconds, a third of the OS monotonic clock's, which
//! matters on the submit path; readings become nanoseconds since the
//! runtime started when a profile is taken, by the ratio of the counter to
//! the monotonic clock since then. Elsewhere the monotonic clock is used.
//! Every recorded time (tasks, transfers, memory events) comes from this
//! one clock, so their order is the order they happened.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_ticks: u64,
    tsc: bool,
    /// The start, in seconds since the UNIX epoch: lines up the traces of
    /// several processes.
    start_unix: f64,
}

impl Clock {
    pub fn new() -> Clock {
        let tsc = invariant_tsc();
        let start = Instant::now();
        let start_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut clock = Clock {
            start,
            start_ticks: 0,
            tsc,
            start_unix,
        };
        clock.start_ticks = clock.ticks();
        clock
    }

    /// When the clock started (the runtime's time zero).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// When the clock started, in seconds since the UNIX epoch.
    pub fn start_unix(&self) -> f64 {
        self.start_unix
    }

    /// A reading, in ticks.
    #[inline]
    pub fn ticks(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: rdtsc has no preconditions on x86_64.
            return unsafe { core::arch::x86_64::_rdtsc() };
        }
        self.start.elapsed().as_nanos() as u64
    }

    /// Converts readings to seconds since the start, calibrated now.
    pub fn seconds(&self) -> impl Fn(u64) -> f64 {
        let (start_ticks, per_tick) = self.calibration();
        move |t| t.saturating_sub(start_ticks) as f64 * per_tick
    }

    /// The reading at the start and the seconds per tick, as measured
    /// against the monotonic clock since the start.
    pub fn calibration(&self) -> (u64, f64) {
        if self.tsc {
            let elapsed = self.start.elapsed().as_secs_f64();
            let ticks = self.ticks().saturating_sub(self.start_ticks).max(1);
            (self.start_ticks, elapsed / ticks as f64)
        } else {
            (0, 1e-9)
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|flags| {
                let has = |f: &str| flags.split_whitespace().any(|w| w == f);
                has("constant_tsc") && has("nonstop_tsc")
            })
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_map_to_the_monotonic_clock() {
        let clock = Clock::new();
        let a = clock.ticks();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = clock.ticks();
        let elapsed = clock.start().elapsed().as_secs_f64();
        let to_s = clock.seconds();
        assert!(to_s(a) < to_s(b));
        assert!((to_s(b) - elapsed).abs() < 2e-3, "{} vs {elapsed}", to_s(b));
        assert!(to_s(b) - to_s(a) >= 0.019, "{}", to_s(b) - to_s(a));
    }
}
