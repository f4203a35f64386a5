//! SLURM: the batch script that starts a command on every rank of an
//! allocation ([`BatchScript`]), submitting it and waiting for its end
//! ([`submit`], [`wait`]), and where this process sits in a job, read from
//! SLURM's standard variables ([`SlurmEnv`]).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};

/// How the batch script starts the command on the allocation's ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// OpenMPI's `mpirun`, which reads the allocation from SLURM
    /// (`--oversubscribe`, so that ranks may outnumber cores).
    Mpirun,
    /// `srun --mpi=pmix`, where SLURM was built with PMIx.
    Srun,
}

impl Launcher {
    /// `mpirun` or `srun`.
    pub fn parse(name: &str) -> Result<Launcher> {
        match name {
            "mpirun" => Ok(Launcher::Mpirun),
            "srun" => Ok(Launcher::Srun),
            other => Err(Error::Config(format!(
                "unknown launcher `{other}` (mpirun, srun)"
            ))),
        }
    }
}

/// An sbatch script that runs `command` on `nodes x ntasks_per_node` ranks.
///
/// ```
/// use xpu::cluster::slurm::{BatchScript, Launcher};
/// let mut script = BatchScript::new(2, 1, &["target/release/examples/mpi_cholesky", "4096"]);
/// script.gpus_per_node = Some(1);
/// let text = script.render();
/// assert!(text.starts_with("#!/bin/bash\n"));
/// assert!(text.contains("#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"));
/// assert!(text.contains("#SBATCH --gpus-per-node=1\n"));
/// assert!(text.contains("mpirun --oversubscribe -np \"$SLURM_NTASKS\" target/release/examples/mpi_cholesky 4096\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchScript {
    pub nodes: usize,
    pub ntasks_per_node: usize,
    /// GPUs asked for on each node (`--gpus-per-node`).
    pub gpus_per_node: Option<usize>,
    /// The time limit, as sbatch takes it (`10`, `1:00:00`).
    pub time: Option<String>,
    pub partition: Option<String>,
    pub job_name: String,
    /// Where the job's output goes (`%j`: the job id).
    pub output: String,
    pub launcher: Launcher,
    pub command: Vec<String>,
}

impl BatchScript {
    /// A script for `command` on `nodes` nodes with `ntasks_per_node` ranks
    /// each, launched by `mpirun`, its output in `xpu-%j.out`.
    pub fn new(nodes: usize, ntasks_per_node: usize, command: &[&str]) -> BatchScript {
        BatchScript {
            nodes,
            ntasks_per_node,
            gpus_per_node: None,
            time: None,
            partition: None,
            job_name: "xpu".into(),
            output: "xpu-%j.out".into(),
            launcher: Launcher::Mpirun,
            command: command.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Checks what sbatch would refuse later, less clearly.
    pub fn check(&self) -> Result<()> {
        if self.nodes == 0 || self.ntasks_per_node == 0 {
            return Err(Error::Config(format!(
                "a job needs at least one node and one task per node, got {} x {}",
                self.nodes, self.ntasks_per_node
            )));
        }
        if self.command.is_empty() {
            return Err(Error::Config(
                "no command to run: give it after `--`".into(),
            ));
        }
        Ok(())
    }

    /// The script's text.
    pub fn render(&self) -> String {
        let mut s = String::from("#!/bin/bash\n");
        let mut option = |name: &str, value: &str| {
            s.push_str(&format!("#SBATCH --{name}={value}\n"));
        };
        option("job-name", &self.job_name);
        option("nodes", &self.nodes.to_string());
        option("ntasks-per-node", &self.ntasks_per_node.to_string());
        if let Some(g) = self.gpus_per_node {
            option("gpus-per-node", &g.to_string());
        }
        if let Some(t) = &self.time {
            option("time", t);
        }
        if let Some(p) = &self.partition {
            option("partition", p);
        }
        option("output", &self.output);
        s.push_str("set -euo pipefail\n");
        let command: Vec<String> = self.command.iter().map(|a| shell_quote(a)).collect();
        let command = command.join(" ");
        match self.launcher {
            Launcher::Mpirun => {
                // OpenMPI refuses to run as root unless both are set.
                s.push_str("if [ \"$(id -u)\" = 0 ]; then\n");
                s.push_str("  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\n");
                s.push_str("fi\n");
                s.push_str(&format!(
                    "mpirun --oversubscribe -np \"$SLURM_NTASKS\" {command}\n"
                ));
            }
            Launcher::Srun => s.push_str(&format!("srun --mpi=pmix {command}\n")),
        }
        s
    }
}

/// `arg` as one shell word: as is when that is safe, else single-quoted.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c));
    match plain {
        true => arg.to_string(),
        false => format!("'{}'", arg.replace('\'', r"'\''")),
    }
}

/// A job's state as SLURM reports it, with where its output went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub id: String,
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, ...
    pub state: String,
    pub output: Option<String>,
}

impl JobStatus {
    /// Whether the job has ended, well or not.
    pub fn is_over(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        )
    }
}

/// Submits `script` with `sbatch`; returns the job id.
pub fn submit(script: &BatchScript) -> Result<String> {
    script.check()?;
    let mut child = Command::new("sbatch")
        .arg("--parsable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_missing("sbatch", &e))?;
    if let Some(stdin) = child.stdin.as_mut() {
        stdin
            .write_all(script.render().as_bytes())
            .map_err(|e| Error::Io(format!("writing the script to sbatch: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Io(format!("sbatch: {e}")))?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split(';')
        .next()
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| Error::Io(format!("sbatch printed no job id: `{}`", text.trim())))
}

/// The job's state from `scontrol show job`, which keeps ended jobs for a
/// while (`MinJobAge`) without needing SLURM's accounting database.
pub fn status(id: &str) -> Result<JobStatus> {
    let out = Command::new("scontrol")
        .args(["show", "job", id, "--oneliner"])
        .output()
        .map_err(|e| tool_missing("scontrol", &e))?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "scontrol does not know job {id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_status(id, &String::from_utf8_lossy(&out.stdout))
}

/// Polls [`status`] every `poll` until the job has ended.
pub fn wait(id: &str, poll: Duration) -> Result<JobStatus> {
    loop {
        let status = status(id)?;
        if status.is_over() {
            return Ok(status);
        }
        std::thread::sleep(poll);
    }
}

fn parse_status(id: &str, text: &str) -> Result<JobStatus> {
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let state = field("JobState")
        .ok_or_else(|| Error::Io(format!("scontrol printed no state for job {id}")))?;
    Ok(JobStatus {
        id: id.to_string(),
        state,
        output: field("StdOut"),
    })
}

fn tool_missing(tool: &str, e: &std::io::Error) -> Error {
    Error::Io(format!(
        "cannot run `{tool}` ({e}): is SLURM installed here (Debian: slurm-client) and on the PATH?"
    ))
}

/// Where this process sits in a SLURM job: the job, its nodes, this
/// process's rank among all and on its node. Read from SLURM's variables
/// (`SLURM_JOB_ID`, `SLURM_JOB_NODELIST`, `SLURM_PROCID`, `SLURM_NTASKS`,
/// `SLURM_LOCALID`, `SLURMD_NODENAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmEnv {
    pub job_id: String,
    pub nodes: Vec<String>,
    pub rank: usize,
    pub ranks: usize,
    pub local_rank: usize,
    pub node: Option<String>,
}

impl SlurmEnv {
    /// This process's place, or `None` outside a SLURM job.
    pub fn from_env() -> Result<Option<SlurmEnv>> {
        SlurmEnv::from_vars(|name| std::env::var(name).ok())
    }

    /// [`SlurmEnv::from_env`] with the variables given by `var`.
    ///
    /// ```
    /// use xpu::cluster::slurm::SlurmEnv;
    /// let vars = [("SLURM_JOB_ID", "42"), ("SLURM_JOB_NODELIST", "node[1-2]"),
    ///             ("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2"), ("SLURM_LOCALID", "0")];
    /// let env = SlurmEnv::from_vars(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))?
    ///     .unwrap();
    /// assert_eq!(env.nodes, ["node1", "node2"]);
    /// assert_eq!((env.rank, env.ranks), (1, 2));
    /// assert!(SlurmEnv::from_vars(|_| None)?.is_none());
    /// # Ok::<(), xpu::Error>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<SlurmEnv>> {
        let Some(job_id) = var("SLURM_JOB_ID") else {
            return Ok(None);
        };
        let number = |name: &str, default: usize| -> Result<usize> {
            var(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .map_err(|_| Error::Config(format!("{name}=`{v}` is not a number")))
            })
        };
        let nodes = match var("SLURM_JOB_NODELIST").or_else(|| var("SLURM_NODELIST")) {
            Some(list) => expand_nodelist(&list)?,
            None => Vec::new(),
        };
        let env = SlurmEnv {
            job_id,
            nodes,
            rank: number("SLURM_PROCID", 0)?,
            ranks: number("SLURM_NTASKS", 1)?,
            local_rank: number("SLURM_LOCALID", 0)?,
            node: var("SLURMD_NODENAME"),
        };
        if env.rank >= env.ranks {
            return Err(Error::Config(format!(
                "SLURM_PROCID={} is not below SLURM_NTASKS={}",
                env.rank, env.ranks
            )));
        }
        Ok(Some(env))
    }
}

/// Expands a SLURM host list: `node[1-3,7],gpu[01-02],login` to each
/// host's name, zero padding kept.
///
/// ```
/// use xpu::cluster::slurm::expand_nodelist;
/// assert_eq!(expand_nodelist("n[1-3,7],gpu[08-10],login")?,
///            ["n1", "n2", "n3", "n7", "gpu08", "gpu09", "gpu10", "login"]);
/// assert!(expand_nodelist("n[3-1]").is_err());
/// # Ok::<(), xpu::Error>(())
/// ```
pub fn expand_nodelist(list: &str) -> Result<Vec<String>> {
    let bad = |why: &str| Error::Config(format!("host list `{list}`: {why}"));
    let mut hosts = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        // One entry: a prefix, then an optional [ranges] group.
        let stop = rest.find([',', '[']).unwrap_or(rest.len());
        let prefix = &rest[..stop];
        rest = &rest[stop..];
        if let Some(group) = rest.strip_prefix('[') {
            let close = group.find(']').ok_or_else(|| bad("a `[` is not closed"))?;
            for range in group[..close].split(',') {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                let width = lo.len();
                let parse = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|_| bad(&format!("`{range}` is not a range of numbers")))
                };
                let (a, b) = (parse(lo)?, parse(hi)?);
                if a > b {
                    return Err(bad(&format!("the range `{range}` runs backwards")));
                }
                hosts.extend((a..=b).map(|n| format!("{prefix}{n:0width$}")));
            }
            rest = &group[close + 1..];
        } else if !prefix.is_empty() {
            hosts.push(prefix.to_string());
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_that_the_shell_would_split_are_quoted() {
        assert_eq!(shell_quote("--size=4096"), "--size=4096");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn scontrol_output_gives_state_and_output_path() {
        let text = "JobId=12 JobName=xpu UserId=root(0) JobState=COMPLETED Reason=None \
                    StdErr=/tmp/xpu-12.out StdOut=/tmp/xpu-12.out";
        let status = parse_status("12", text).unwrap();
        assert_eq!(status.state, "COMPLETED");
        assert_eq!(status.output.as_deref(), Some("/tmp/xpu-12.out"));
        assert!(status.is_over());
        let running = parse_status("12", "JobId=12 JobState=RUNNING").unwrap();
        assert!(!running.is_over());
        assert!(parse_status("12", "JobId=12").is_err());
    }

    #[test]
    fn a_script_says_what_is_missing() {
        let empty = BatchScript::new(1, 1, &[]);
        assert!(empty
            .check()
            .unwrap_err()
            .to_string()
            .contains("after `--`"));
        let none = BatchScript::new(0, 1, &["true"]);
        assert!(none.check().is_err());
        let mut srun = BatchScript::new(2, 2, &["hostname"]);
        srun.launcher = Launcher::Srun;
        srun.time = Some("5".into());
        let text = srun.render();
        assert!(text.contains("#SBATCH --time=5\n"), "{text}");
        assert!(text.ends_with("srun --mpi=pmix hostname\n"), "{text}");
        assert!(!text.contains("OMPI_ALLOW_RUN_AS_ROOT"), "{text}");
    }
}
