//! `xpu serve`, `xpu token issue`, `xpu submit`, `xpu jobs`, `xpu job`: the
//! job service and its client.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use xpu::service::{
    load_test, secret_file, Client, Issuer, JobDocument, JobState, JobStatus, LoadPlan, Role,
    RoleLimits, ServeConfig, Server, Verifier,
};
use xpu::{Error, Result};

use crate::RuntimeArgs;

/// Where the token settings come from, for `serve` and `token issue`.
#[derive(Args)]
pub struct TokenSettings {
    /// Token algorithm, pinned: HS256 (a shared secret), RS256 or ES256 (a
    /// key pair: the server holds the public key, the issuer the private).
    #[arg(long, default_value = "HS256")]
    algorithm: String,
    /// The HS256 secret (made, 32 random bytes, if missing). Default:
    /// service/jwt-secret in the data directory.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// The `iss` claim tokens carry and the server requires.
    #[arg(long, default_value = "xpu")]
    issuer: String,
    /// The `aud` claim tokens carry and the server requires.
    #[arg(long, default_value = "xpu")]
    audience: String,
}

impl TokenSettings {
    fn hs256_secret(&self) -> Result<Vec<u8>> {
        let path = self
            .secret_file
            .clone()
            .unwrap_or_else(|| xpu::host::data_dir().join("service").join("jwt-secret"));
        let (secret, made) = secret_file(&path)?;
        if made {
            eprintln!("made a new token secret: {}", path.display());
        }
        Ok(secret)
    }

    /// The key for `algorithm`: the HS256 secret, or the PEM file given.
    fn key(&self, pem: Option<&Path>, what: &str) -> Result<Vec<u8>> {
        if self.algorithm.eq_ignore_ascii_case("HS256") {
            return self.hs256_secret();
        }
        let pem = pem.ok_or_else(|| {
            Error::Config(format!("{} needs --{what} FILE (PEM)", self.algorithm))
        })?;
        std::fs::read(pem).map_err(|e| Error::Io(format!("{}: {e}", pem.display())))
    }
}

/// `xpu serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8707")]
    addr: SocketAddr,
    /// The job queue (SQLite). Default: service/jobs.sqlite in the data
    /// directory.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    #[command(flatten)]
    tokens: TokenSettings,
    /// The public key (PEM) for RS256 or ES256.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Per-role limits (TOML: a table per role, e.g. `[submitter]
    /// max_tasks = 100`); unset fields keep their defaults.
    #[arg(long, value_name = "FILE")]
    limits: Option<PathBuf>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Days finished jobs and their results are kept.
    #[arg(long, default_value_t = 7.0)]
    retention_days: f64,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Connections served at once; one more is answered 429.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a request may take, body included (answered 408 after).
    #[arg(long, default_value_t = 120.0)]
    request_timeout: f64,
}

/// `xpu token`.
#[derive(Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token: `xpu token issue --role submitter --sub ada --ttl 1h`.
    Issue(IssueArgs),
}

#[derive(Args)]
struct IssueArgs {
    /// viewer, submitter, operator or admin.
    #[arg(long)]
    role: String,
    /// Who the token speaks for (jobs and results belong to it).
    #[arg(long)]
    sub: String,
    /// How long it is valid: 90s, 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    #[command(flatten)]
    tokens: TokenSettings,
    /// The private key (PEM) for RS256 or ES256.
    #[arg(long, value_name = "FILE")]
    private_key: Option<PathBuf>,
}

fn parse_ttl(s: &str) -> std::result::Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}`: expected a number and s, m, h or d (e.g. 1h)"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("`{other}`: the unit is s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(scale)))
}

/// The server and token every client command takes.
#[derive(Args)]
pub struct ClientArgs {
    /// The server. Default: $XPU_SERVER, else http://127.0.0.1:8707.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The bearer token. Default: $XPU_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// For an HTTPS server whose certificate the usual web roots do not
    /// sign: the certificate (PEM) that signs it.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

impl ClientArgs {
    fn server(&self) -> String {
        self.server
            .clone()
            .or_else(|| std::env::var("XPU_SERVER").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8707".into())
    }

    fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var("XPU_TOKEN").ok())
    }

    fn client(&self) -> Result<Client> {
        match &self.ca_cert {
            None => Ok(Client::new(&self.server(), self.token().as_deref())),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
                Client::with_root_certificate(&self.server(), self.token().as_deref(), &pem)
            }
        }
    }
}

/// `xpu submit`.
#[derive(Args)]
pub struct SubmitArgs {
    /// The job document (JSON: tensors, tasks, results; see the README).
    job: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
    /// Follow the job (a progress bar of its tasks) until it ends, and
    /// print its results.
    #[arg(long)]
    wait: bool,
    /// With --wait: write the results into DIR (NAME.bin, little-endian,
    /// and results.json with each dtype and shape).
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
    /// Submitting the same document again under the same key returns the
    /// first job instead of running a second.
    #[arg(long)]
    idempotency_key: Option<String>,
}

/// `xpu jobs`.
#[derive(Args)]
pub struct JobsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Everyone's jobs (operators).
    #[arg(long)]
    all: bool,
}

/// `xpu job`.
#[derive(Args)]
pub struct JobArgs {
    /// The job id `xpu submit` printed.
    id: String,
    #[command(flatten)]
    client: ClientArgs,
    /// Write the results into DIR (as `xpu submit --results`).
    #[arg(long, value_name = "DIR")]
    results: Option<PathBuf>,
    /// Cancel the job.
    #[arg(long)]
    cancel: bool,
}

pub fn serve(runtime: &RuntimeArgs, args: &ServeArgs) -> Result<()> {
    let key = args.tokens.key(args.public_key.as_deref(), "public-key")?;
    let verifier = Verifier::new(
        &args.tokens.algorithm,
        &key,
        &args.tokens.issuer,
        &args.tokens.audience,
    )?;
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| xpu::host::data_dir().join("service").join("jobs.sqlite"));
    let mut config = ServeConfig::new(args.addr, db.clone(), verifier);
    if let Some(path) = &args.limits {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        config.limits = RoleLimits::from_toml(&text)?;
    }
    config.workers = args.jobs;
    config.max_connections = args.max_connections;
    config.header_timeout = Duration::try_from_secs_f64(args.header_timeout)
        .map_err(|e| Error::Config(format!("--header-timeout: {e}")))?;
    config.request_timeout = Duration::try_from_secs_f64(args.request_timeout)
        .map_err(|e| Error::Config(format!("--request-timeout: {e}")))?;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some((cert.clone(), key.clone()));
    }
    config.retention = Duration::try_from_secs_f64(args.retention_days * 86_400.0)
        .map_err(|e| Error::Config(format!("--retention-days: {e}")))?;
    let rt = Arc::new(runtime.build(None)?);
    let server = Server::start(rt.clone(), config)?;
    println!(
        "xpu serve: listening on {} ({} units, policy {}; queue {}; {} jobs queued again)",
        server.url(),
        rt.units().len(),
        rt.policy().as_str(),
        db.display(),
        server.requeued()
    );
    std::io::stdout().flush().ok();
    server.run_until_signal()?;
    eprintln!("xpu serve: stopped");
    Ok(())
}

pub fn token(args: &TokenArgs) -> Result<()> {
    let TokenCommand::Issue(args) = &args.command;
    let role = Role::parse(&args.role)?;
    let key = args
        .tokens
        .key(args.private_key.as_deref(), "private-key")?;
    let issuer = Issuer::new(
        &args.tokens.algorithm,
        &key,
        &args.tokens.issuer,
        &args.tokens.audience,
    )?;
    println!("{}", issuer.issue(&args.sub, role, args.ttl)?);
    Ok(())
}

fn print_status(job: &JobStatus) {
    println!(
        "{}  {:<9}  {}  tasks {}/{}{}",
        job.id,
        format!("{:?}", job.state).to_lowercase(),
        job.subject,
        job.tasks_done,
        job.tasks,
        job.error
            .as_ref()
            .map(|e| format!("  ({e})"))
            .unwrap_or_default()
    );
}

/// Prints (and with `dir`, writes) a succeeded job's results.
fn show_results(client: &Client, id: &str, dir: Option<&Path>) -> Result<()> {
    let results = client.results(id)?;
    let mut manifest = Vec::new();
    for r in &results {
        let values = r.values();
        let head: Vec<String> = values.iter().take(8).map(|v| format!("{v}")).collect();
        println!(
            "  {} {} {:?}: [{}{}]",
            r.name,
            r.dtype,
            r.shape,
            head.join(", "),
            if values.len() > 8 { ", ..." } else { "" }
        );
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
            let file = dir.join(format!("{}.bin", r.name));
            std::fs::write(&file, &r.bytes)
                .map_err(|e| Error::Io(format!("{}: {e}", file.display())))?;
            manifest.push(serde_json::json!({
                "name": r.name, "dtype": r.dtype, "shape": r.shape,
                "file": format!("{}.bin", r.name),
            }));
        }
    }
    if let Some(dir) = dir {
        let path = dir.join("results.json");
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| Error::Io(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        println!("results written to {}", dir.display());
    }
    Ok(())
}

pub fn submit(args: &SubmitArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.job)
        .map_err(|e| Error::Io(format!("{}: {e}", args.job.display())))?;
    let doc: JobDocument = serde_json::from_str(&text).map_err(|e| Error::JobDocument {
        field: format!(
            "{} line {} column {}",
            args.job.display(),
            e.line(),
            e.column()
        ),
        what: e.to_string(),
    })?;
    let client = args.client.client()?;
    let job = client.submit(&doc, args.idempotency_key.as_deref())?;
    print_status(&job);
    if !args.wait {
        return Ok(());
    }
    let bar = crate::report::progress(job.tasks, &format!("job {}", &job.id[..8]));
    let job = client.follow(&job.id, &mut |status| bar.set_position(status.tasks_done))?;
    bar.finish_and_clear();
    print_status(&job);
    match job.state {
        JobState::Succeeded => show_results(&client, &job.id, args.results.as_deref()),
        _ => Err(Error::Server {
            status: 200,
            message: format!(
                "job {} {}",
                job.id,
                job.error.unwrap_or_else(|| "did not succeed".into())
            ),
        }),
    }
}

pub fn jobs(args: &JobsArgs) -> Result<()> {
    for job in args.client.client()?.jobs(args.all)? {
        print_status(&job);
    }
    Ok(())
}

pub fn job(args: &JobArgs) -> Result<()> {
    let client = args.client.client()?;
    let job = if args.cancel {
        client.cancel(&args.id)?
    } else {
        client.status(&args.id)?
    };
    print_status(&job);
    match &args.results {
        Some(dir) => show_results(&client, &job.id, Some(dir)),
        None => Ok(()),
    }
}

/// `xpu loadtest`.
#[derive(Args)]
pub struct LoadTestArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Jobs to submit, each one GEMM.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Clients submitting at once (a thread and a connection each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// The GEMM's size.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Idempotency keys PREFIX-0, PREFIX-1, ...: run again with the same
    /// prefix after a server restart to check every accepted job ends once.
    #[arg(long)]
    key_prefix: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn loadtest(args: &LoadTestArgs) -> Result<()> {
    let url = args.client.server();
    let token = args
        .client
        .token()
        .ok_or_else(|| Error::Config("a load test needs --token or $XPU_TOKEN".into()))?;
    let plan = LoadPlan {
        jobs: args.jobs,
        clients: args.clients,
        size: args.size,
        key_prefix: args.key_prefix.clone(),
    };
    let bar = crate::report::progress(2 * args.jobs as u64, "submitted + checked");
    let report = load_test(&url, &token, &plan, &|n| bar.set_position(n as u64))?;
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Io(e.to_string()))?
        );
    } else {
        println!(
            "{} jobs ({}x{} GEMM) from {} clients in {:.2} s: {:.0} jobs/s",
            report.jobs,
            args.size,
            args.size,
            report.clients,
            report.seconds,
            report.jobs_per_second
        );
        println!(
            "submit latency p50 {:.2} ms, p99 {:.2} ms; accepted to done p50 {:.1} ms, p99 {:.1} ms",
            report.submit_p50_ms, report.submit_p99_ms, report.complete_p50_ms, report.complete_p99_ms
        );
        println!(
            "failed {}, wrong results {}, duplicated {}, started more than once {}, throttled submissions {}",
            report.failed, report.wrong, report.duplicated, report.restarted, report.throttled
        );
    }
    if report.failed + report.wrong + report.duplicated > 0 {
        return Err(Error::Server {
            status: 0,
            message: "the load test found failed, wrong or duplicated jobs".into(),
        });
    }
    Ok(())
}
