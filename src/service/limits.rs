//! Per-role limits of the job service: tensor and job bytes, task count,
//! run time, queued and running jobs per subject, and request rate; read
//! from TOML (`xpu serve --limits FILE`), each role's table overriding the
//! defaults field by field.
//!
//! ```
//! use xpu::service::{Role, RoleLimits};
//! let limits = RoleLimits::from_toml("[submitter]\nmax_tasks = 10\n")?;
//! assert_eq!(limits.of(Role::Submitter).max_tasks, 10);
//! assert_eq!(limits.of(Role::Operator).max_tasks, RoleLimits::default().of(Role::Operator).max_tasks);
//! let err = limits.of(Role::Submitter).check_job(0, 11).unwrap_err();
//! assert!(err.to_string().contains("max_tasks"), "{err}");
//! assert!(RoleLimits::from_toml("[submitter]\nmax_taks = 1\n").is_err());
//! # Ok::<(), xpu::Error>(())
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Role;
use crate::{Error, Result};

/// What one role may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Bytes of one tensor.
    pub max_tensor_bytes: u64,
    /// Bytes of all of a job's tensors.
    pub max_job_bytes: u64,
    /// Tasks in one job.
    pub max_tasks: u64,
    /// Seconds a job may run before it is cancelled.
    pub max_run_seconds: f64,
    /// Jobs of one subject waiting to run.
    pub max_queued_jobs: u64,
    /// Jobs of one subject running at once.
    pub max_running_jobs: u64,
    /// Requests per second of one subject, sustained.
    pub requests_per_second: f64,
    /// Requests one subject may make at once above that rate.
    pub burst: f64,
    /// The role, for messages.
    #[serde(skip)]
    role: String,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_tensor_bytes: 64 << 20,
            max_job_bytes: 256 << 20,
            max_tasks: 10_000,
            max_run_seconds: 300.0,
            max_queued_jobs: 1_000,
            max_running_jobs: 4,
            requests_per_second: 200.0,
            burst: 400.0,
            role: String::new(),
        }
    }
}

impl Limits {
    /// No limit at all (for running documents outside the service).
    pub fn unlimited() -> Limits {
        Limits {
            max_tensor_bytes: u64::MAX,
            max_job_bytes: u64::MAX,
            max_tasks: u64::MAX,
            max_run_seconds: f64::INFINITY,
            max_queued_jobs: u64::MAX,
            max_running_jobs: u64::MAX,
            requests_per_second: f64::INFINITY,
            burst: f64::INFINITY,
            role: "unlimited".into(),
        }
    }

    fn over(&self, limit: &'static str, allowed: u64, requested: u64) -> Error {
        Error::LimitExceeded {
            limit,
            role: self.role.clone(),
            allowed,
            requested,
        }
    }

    /// One tensor's bytes.
    pub fn check_tensor_bytes(&self, bytes: u64) -> Result<()> {
        if bytes > self.max_tensor_bytes {
            return Err(self.over("max_tensor_bytes", self.max_tensor_bytes, bytes));
        }
        Ok(())
    }

    /// A whole job's bytes and task count.
    pub fn check_job(&self, bytes: u64, tasks: usize) -> Result<()> {
        if bytes > self.max_job_bytes {
            return Err(self.over("max_job_bytes", self.max_job_bytes, bytes));
        }
        if tasks as u64 > self.max_tasks {
            return Err(self.over("max_tasks", self.max_tasks, tasks as u64));
        }
        Ok(())
    }

    /// A subject's jobs waiting (`queued`) and running, before one more.
    pub fn check_queue(&self, queued: u64) -> Result<()> {
        if queued >= self.max_queued_jobs {
            return Err(self.over("max_queued_jobs", self.max_queued_jobs, queued + 1));
        }
        Ok(())
    }

    /// How long a job may run.
    pub fn run_time(&self) -> Duration {
        Duration::try_from_secs_f64(self.max_run_seconds).unwrap_or(Duration::MAX)
    }
}

/// The limits of every role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleLimits {
    #[serde(default = "RoleLimits::viewer")]
    pub viewer: Limits,
    #[serde(default = "RoleLimits::submitter")]
    pub submitter: Limits,
    #[serde(default = "RoleLimits::operator")]
    pub operator: Limits,
    #[serde(default = "RoleLimits::admin")]
    pub admin: Limits,
}

impl Default for RoleLimits {
    fn default() -> RoleLimits {
        RoleLimits {
            viewer: RoleLimits::viewer(),
            submitter: RoleLimits::submitter(),
            operator: RoleLimits::operator(),
            admin: RoleLimits::admin(),
        }
        .named()
    }
}

impl RoleLimits {
    fn viewer() -> Limits {
        Limits {
            max_queued_jobs: 0,
            max_running_jobs: 0,
            ..Limits::default()
        }
    }

    fn submitter() -> Limits {
        Limits::default()
    }

    fn operator() -> Limits {
        let d = Limits::default();
        Limits {
            max_tensor_bytes: d.max_tensor_bytes * 4,
            max_job_bytes: d.max_job_bytes * 4,
            max_tasks: d.max_tasks * 10,
            max_run_seconds: d.max_run_seconds * 4.0,
            requests_per_second: d.requests_per_second * 4.0,
            burst: d.burst * 4.0,
            ..d
        }
    }

    fn admin() -> Limits {
        RoleLimits::operator()
    }

    /// Reads limits from TOML: a table per role (`[submitter]`), each field
    /// of [`Limits`] optional; unknown roles and fields are errors.
    pub fn from_toml(text: &str) -> Result<RoleLimits> {
        toml::from_str::<RoleLimits>(text)
            .map(RoleLimits::named)
            .map_err(|e| Error::Config(format!("service limits: {e}")))
    }

    /// The limits with each role's name set (for messages).
    pub(crate) fn named(mut self) -> RoleLimits {
        for role in Role::ALL {
            self.of_mut(role).role = role.to_string();
        }
        self
    }

    fn of_mut(&mut self, role: Role) -> &mut Limits {
        match role {
            Role::Viewer => &mut self.viewer,
            Role::Submitter => &mut self.submitter,
            Role::Operator => &mut self.operator,
            Role::Admin => &mut self.admin,
        }
    }

    /// The limits of `role`.
    pub fn of(&self, role: Role) -> &Limits {
        match role {
            Role::Viewer => &self.viewer,
            Role::Submitter => &self.submitter,
            Role::Operator => &self.operator,
            Role::Admin => &self.admin,
        }
    }
}

/// A token bucket per subject.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request of `subject` from its bucket, or says it is over
    /// the rate.
    pub fn admit(&self, subject: &str, limits: &Limits) -> Result<()> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        let (tokens, at) = buckets
            .entry(subject.to_string())
            .or_insert((limits.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * limits.requests_per_second;
        *tokens = (*tokens + refill).min(limits.burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(limits.over(
                "requests_per_second",
                limits.requests_per_second as u64,
                limits.requests_per_second as u64 + 1,
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}
