//! `xpu`: discover processing units, run the demo workload, benchmark kernels.

// Every submission allocates a task node that a worker frees; mimalloc
// handles that cross-thread pattern much better than glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod calibrate;
mod demo;
mod generate;
mod history;
mod info;
mod monitor;
#[cfg(feature = "opencl")]
mod opencl;
mod perfmodel_plot;
mod power;
mod report;
#[cfg(feature = "serve")]
mod serve;
mod sim;
mod slurm;
mod stream;
mod trace;
mod vision;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use xpu::sched::Slowdown;
use xpu::{Policy, Runtime};

/// xpu — a heterogeneous compute runtime.
///
/// xpu runs tensor, vision and linear-algebra kernels as tasks across every
/// processing unit of the machine. Dependencies come from the tensors each
/// task reads and writes; data moves between memory nodes only when a unit
/// needs a copy it does not have.
///
/// Start with `xpu info` (what units are there), then `xpu demo` (a mixed
/// workload with a per-unit report), then `xpu bench` (kernel speeds).
#[derive(Parser)]
#[command(name = "xpu", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options that shape the runtime, for every command.
#[derive(Args, Clone)]
struct RuntimeArgs {
    /// Scheduling policy: eager (one shared queue), round-robin,
    /// work-stealing (a queue per unit, idle units steal), dmda (each task
    /// to the unit where it is predicted to finish first, from measured run
    /// and transfer times), dmdas (dmda, each unit's queue by priority), or
    /// energy (each task to the unit and power state that add the least
    /// energy, at most --slowdown times slower than dmda).
    #[arg(long, global = true, default_value = "dmda", value_parser = parse_policy)]
    policy: Policy,
    /// The energy policy's bound: its schedule at most this many times
    /// dmda's (1: only what costs dmda's schedule nothing).
    #[arg(long, global = true, default_value = "1.2", value_parser = parse_slowdown)]
    slowdown: Slowdown,
    /// Number of CPU units. Each CPU unit's kernels use cores/units threads.
    /// Default: one per core (`bench`: one unit using every core).
    #[arg(long, global = true)]
    cpu_units: Option<usize>,
    /// Use only the CPU units: do not look for GPUs or other devices (as
    /// when comparing with a CPU-only run of another runtime).
    #[arg(long, global = true)]
    cpu_only: bool,
    /// Leave the CPU units' worker threads unbound. By default each CPU
    /// unit's worker is bound to a core of its own when there is a core
    /// per unit (`xpu info` says which).
    #[arg(long, global = true)]
    no_bind: bool,
    /// Write a Chrome trace of the run (tasks per unit, transfers,
    /// allocations) to FILE; open it in https://ui.perfetto.dev or
    /// chrome://tracing, or summarise it with `xpu trace FILE`.
    #[arg(long, global = true, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Draw a Gantt chart of the run (a row per unit, tasks coloured by
    /// kernel, transfers) to FILE as SVG.
    #[arg(long, global = true, value_name = "FILE")]
    gantt: Option<PathBuf>,
    /// Do not record tasks for traces (saves a few tens of ns per task).
    #[arg(long, global = true)]
    no_profiling: bool,
    /// The task history file (SQLite): performance models are loaded from
    /// it at start and this run's tasks and models stored at exit.
    /// Default: history.sqlite in the data directory ($XPU_DATA_DIR, else
    /// $XDG_DATA_HOME/xpu, else ~/.local/share/xpu).
    #[arg(long, global = true, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Neither load nor store the task history.
    #[arg(long, global = true)]
    no_history: bool,
    /// Gate a unit once it has been idle this many milliseconds (its
    /// worker parks, its free device memory goes back; work wakes it);
    /// 0: never.
    #[arg(long, global = true, value_name = "MS", default_value_t = 1000)]
    gate_after: u64,
}

pub(crate) fn parse_policy(s: &str) -> Result<Policy, String> {
    Policy::parse(s).map_err(|e| e.to_string())
}

fn parse_slowdown(s: &str) -> Result<Slowdown, String> {
    let factor: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number (e.g. 1.2: at most 20% slower than dmda)"))?;
    Slowdown::new(factor).map_err(|e| e.to_string())
}

impl RuntimeArgs {
    fn build(&self, default_cpu_units: Option<usize>) -> xpu::Result<Runtime> {
        let mut builder = Runtime::builder()
            .policy(self.policy)
            .slowdown(self.slowdown)
            .device_discovery(!self.cpu_only)
            .bind_workers(!self.no_bind)
            .profiling(!self.no_profiling)
            .gate_after((self.gate_after > 0).then(|| Duration::from_millis(self.gate_after)));
        if let Some(n) = self.cpu_units.or(default_cpu_units) {
            builder = builder.cpu_units(n);
        }
        if !self.no_history {
            builder = builder.history(history::path(self.history.as_ref()));
        }
        let rt = builder.build()?;
        power::apply_kept(&rt)?;
        Ok(rt)
    }

    /// Writes the trace and Gantt chart asked for (or the given defaults)
    /// and says where they are.
    fn export(
        &self,
        rt: &Runtime,
        default_trace: Option<&str>,
        default_gantt: Option<&str>,
    ) -> xpu::Result<()> {
        let trace = self.trace.clone().or(default_trace.map(PathBuf::from));
        let gantt = self.gantt.clone().or(default_gantt.map(PathBuf::from));
        if trace.is_none() && gantt.is_none() {
            return Ok(());
        }
        if self.no_profiling {
            eprintln!("note: --no-profiling: the trace has transfers but no tasks");
        }
        write_profile(&rt.profile(), trace.as_deref(), gantt.as_deref())
    }
}

/// Writes a profile as a Chrome trace and as a Gantt chart, where asked.
fn write_profile(
    profile: &xpu::trace::Profile,
    trace: Option<&std::path::Path>,
    gantt: Option<&std::path::Path>,
) -> xpu::Result<()> {
    if let Some(path) = trace {
        profile.write_chrome_trace(path)?;
        eprintln!(
            "trace: {} ({} tasks; open in https://ui.perfetto.dev or summarise with `xpu trace {}`)",
            path.display(),
            profile.tasks.len(),
            path.display()
        );
    }
    if let Some(path) = gantt {
        profile.write_gantt(path)?;
        eprintln!("gantt chart: {}", path.display());
    }
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// List every unit: id, kind, backend, device, memory, emulated or not;
    /// and the backends that are compiled in but did not come up, with why.
    Info,
    /// Run a mixed workload on every unit found — a tiled GEMM DAG, an image
    /// pipeline and an element-wise chain — check each result against the
    /// CPU reference, and print a per-unit report; then, when the model is
    /// fetched, a short answer from the language model on the LPU.
    Demo(demo::DemoArgs),
    /// Time kernels on units: a kernel x unit x size table of time and
    /// GFLOP/s (or GB/s for memory-bound kernels); or a whole DAG with --dag.
    ///
    /// Examples:
    ///   xpu bench --kernel gemm --sizes 256,512,1024
    ///   xpu bench --kernel softmax --unit cpu --json
    ///   xpu bench --dag cholesky --size 4096 --tile 256 --dtype f32
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
    /// OpenCL devices (FPGA and NPU units): list them and how they map to
    /// units (`xpu opencl devices`), or compile every kernel ahead of time
    /// into the program cache (`xpu opencl build`).
    #[cfg(feature = "opencl")]
    Opencl(opencl::OpenClArgs),
    /// Watch the host (CPU per core, memory) and every unit (tasks done,
    /// queued, busy, node memory) while a workload runs, refreshed every
    /// --period-ms; a line per sample when the output is not a terminal.
    ///
    /// Examples:
    ///   xpu monitor                        # the demo workload, live
    ///   xpu monitor --workload idle --seconds 10
    ///   xpu monitor --prometheus > metrics.txt
    #[command(verbatim_doc_comment)]
    Monitor(monitor::MonitorArgs),
    /// Run an image pipeline on a PNG, on the VPU by default, check each
    /// stage against the CPU path and write the result as PNG.
    ///
    /// Example:
    ///   xpu vision astronaut.png --out edges.png --pipeline gray,blur=2,sobel,threshold=64
    #[command(verbatim_doc_comment)]
    Vision(vision::VisionArgs),
    /// Continue a prompt with a language model on the LPU (SmolLM2-135M
    /// from `scripts/fetch-models.sh` by default), streaming the tokens and
    /// ending with tokens/s for the prompt and for the generation.
    ///
    /// Examples:
    ///   xpu generate "The capital of France is" --max-tokens 16
    ///   xpu generate "Write a haiku about rust" --chat --temperature 0.7 --seed 1
    ///   xpu generate "Hello" --unit cpu
    #[command(verbatim_doc_comment)]
    Generate(generate::GenerateArgs),
    /// Measure every kernel at a ladder of small sizes on every unit, and
    /// copies to and from every device memory, into the performance models
    /// kept in the task history: `--policy dmda` then places well from a
    /// run's first task. Shows a progress bar; bounded in time.
    ///
    /// Examples:
    ///   xpu calibrate --quick
    ///   xpu calibrate --kernel gemm,potrf,trsm,syrk --seconds 60
    Calibrate(calibrate::CalibrateArgs),
    /// The task history: tasks per kernel and unit over the tasks kept (the latest 200,000)
    /// (runs store their tasks and models at exit; see --history), and
    /// with --tasks N the last N tasks: unit, node, times, footprint, and
    /// the bytes fetched and where from.
    ///
    /// Example: xpu history --kernel gemm --tasks 20
    History(history::HistoryArgs),
    /// The performance models placement learns (`--policy dmda`), as
    /// stored in the task history.
    ///
    /// Example: xpu perfmodel show --kernel gemm --unit cpu
    Perfmodel(history::PerfmodelArgs),
    /// Simulate a task graph on a platform that is not here: the runtime's
    /// own policies place it while a virtual clock advances by the speeds
    /// and links a platform description gives (TOML; see `platforms/`).
    /// Prints the makespan against a lower bound (the longer of the
    /// critical path on the fastest units and the work spread over the
    /// units, each at its speed), the modelled energy and the bytes moved,
    /// one line per policy; --gantt draws the schedule, --trace writes it
    /// as a Chrome trace. Under --policy energy the makespan is held to
    /// --slowdown times dmda's (both are simulated).
    ///
    /// Examples:
    ///   xpu sim --platform platforms/4gpu-8cpu.toml --dag cholesky --tiles 32 --policy dmdas
    ///   xpu sim --platform platforms/4gpu-8cpu.toml --dag cholesky --tiles 32 --policies dmda,energy --slowdown 1.2
    ///   xpu sim --platform platforms/laptop-igpu.toml --dag lu --tiles 16 --policies eager,dmda --gantt lu.svg
    ///   xpu sim --platform platforms/64-units.toml --dag random --tasks 1000000 --tiles 4096
    #[command(verbatim_doc_comment)]
    Sim(sim::SimArgs),
    /// Run a command on the ranks of a SLURM allocation: print the sbatch
    /// script (`script`), or submit it, wait for the job to end and report
    /// its id, state and output file (`submit`). Ranks start with OpenMPI's
    /// mpirun inside the allocation (or `--launcher srun`); a rank finds its
    /// place from SLURM's variables (`xpu::cluster::slurm::SlurmEnv`).
    ///
    /// Examples:
    ///   xpu slurm script --nodes 2 --ntasks-per-node 1 -- target/release/examples/cholesky 4096
    ///   xpu slurm script --nodes 4 --gpus-per-node 1 --time 30 -- ./my_app --size 8192
    ///   xpu slurm submit --nodes 2 -- hostname
    #[command(verbatim_doc_comment)]
    Slurm(slurm::SlurmArgs),
    /// Serve this machine's units as an authenticated job service over
    /// HTTP: jobs (JSON documents naming built-in kernels) are queued in
    /// SQLite before they are accepted, run by the runtime's placement, and
    /// their results kept for their owner. Tokens: `xpu token issue`.
    ///
    /// Examples:
    ///   xpu serve                                  # 127.0.0.1:8707, HS256 secret in the data dir
    ///   xpu serve --addr 0.0.0.0:8707 --limits limits.toml --jobs 4
    ///   xpu serve --algorithm RS256 --public-key issuer.pub.pem
    #[cfg(feature = "serve")]
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
    /// Mint tokens for the job service.
    ///
    /// Example: xpu token issue --role submitter --sub ada --ttl 8h
    #[cfg(feature = "serve")]
    #[command(verbatim_doc_comment)]
    Token(serve::TokenArgs),
    /// Submit a job document to a server (`xpu serve`); --wait waits for
    /// it and prints its results.
    ///
    /// Example: XPU_TOKEN=$(xpu token issue --role submitter --sub ada) xpu submit job.json --wait
    #[cfg(feature = "serve")]
    #[command(verbatim_doc_comment)]
    Submit(serve::SubmitArgs),
    /// List your jobs on a server (--all: everyone's, for operators).
    #[cfg(feature = "serve")]
    Jobs(serve::JobsArgs),
    /// One job's status on a server; --results DIR fetches its results,
    /// --cancel cancels it.
    #[cfg(feature = "serve")]
    Job(serve::JobArgs),
    /// Load a server: many clients submit small GEMM jobs, every result is
    /// checked; prints jobs/s and submit and completion latency.
    ///
    /// Example: xpu loadtest --server http://127.0.0.1:8707 --jobs 10000 --clients 64
    #[cfg(feature = "serve")]
    #[command(verbatim_doc_comment)]
    Loadtest(serve::LoadTestArgs),
    /// Summarise a trace written with --trace (or by `xpu demo`): per unit
    /// tasks, busy time, utilisation, GFLOP/s and bytes moved; transfers per
    /// direction; and the critical path. `--gantt OUT.svg` draws it. Given
    /// the traces of several processes (a job's ranks), it summarises each,
    /// and `--merge OUT.json` writes them as one timeline.
    ///
    /// Examples:
    ///   xpu trace xpu-trace.json --gantt xpu-gantt.svg
    ///   xpu trace rank0.json rank1.json --merge job.json
    #[command(verbatim_doc_comment)]
    Trace(trace::TraceArgs),
    /// Power states and energy: each unit's state and the energy profile
    /// it is modelled with (or the counter it is measured by); with
    /// `--trace FILE`, energy per unit and per kernel of that run. `set`
    /// keeps a unit in a state for later runs.
    ///
    /// Examples:
    ///   xpu power
    ///   xpu power set 1 low-power
    ///   xpu demo && xpu power --trace xpu-trace.json
    #[command(verbatim_doc_comment)]
    Power(power::PowerArgs),
}

fn main() {
    // Mesa's Vulkan device-select layer looks for a Wayland display and,
    // where no session runs (servers, CI), prints an XDG_RUNTIME_DIR error
    // twice; xpu enumerates every adapter itself, so the layer is not
    // needed. Set before any thread starts.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none()
        && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    // Like other Unix tools, end quietly when the reader of the output
    // goes away (`xpu vision ... | head -1`) instead of panicking in
    // `println!`: Rust ignores SIGPIPE unless told otherwise.
    // SAFETY: resetting a signal to its default action, before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Info => info::run(&cli.runtime),
        Command::Demo(args) => demo::run(&cli.runtime, args),
        Command::Bench(args) => bench::run(&cli.runtime, args),
        Command::Vision(args) => vision::run(&cli.runtime, args),
        Command::Generate(args) => generate::run(&cli.runtime, args),
        Command::Monitor(args) => monitor::run(&cli.runtime, args),
        Command::Trace(args) => trace::run(args, cli.runtime.gantt.as_deref()),
        Command::Power(args) => power::run(&cli.runtime, args),
        Command::Sim(args) => sim::run(&cli.runtime, args),
        Command::Slurm(args) => slurm::run(args),
        Command::Calibrate(args) => calibrate::run(&cli.runtime, args),
        Command::History(args) => history::run(&history::path(cli.runtime.history.as_ref()), args),
        Command::Perfmodel(args) => {
            history::perfmodel(&history::path(cli.runtime.history.as_ref()), args)
        }
        #[cfg(feature = "opencl")]
        Command::Opencl(args) => opencl::run(args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::serve(&cli.runtime, args),
        #[cfg(feature = "serve")]
        Command::Token(args) => serve::token(args),
        #[cfg(feature = "serve")]
        Command::Submit(args) => serve::submit(args),
        #[cfg(feature = "serve")]
        Command::Jobs(args) => serve::jobs(args),
        #[cfg(feature = "serve")]
        Command::Job(args) => serve::job(args),
        #[cfg(feature = "serve")]
        Command::Loadtest(args) => serve::loadtest(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        std::process::exit(1);
    }
}
