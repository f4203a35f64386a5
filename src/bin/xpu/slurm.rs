//! `xpu slurm script|submit`: a batch script that runs a command on the
//! ranks of a SLURM allocation, printed or submitted and waited for.

use std::time::Duration;

use clap::{Args, Subcommand};
use xpu::cluster::slurm::{self, BatchScript, Launcher};

#[derive(Args)]
pub struct SlurmArgs {
    #[command(subcommand)]
    action: SlurmAction,
}

#[derive(Subcommand)]
enum SlurmAction {
    /// Print the sbatch script.
    Script(JobArgs),
    /// Submit the script with sbatch, wait for the job to end, and report
    /// its id, final state and output file; fails unless it COMPLETED.
    Submit {
        #[command(flatten)]
        job: JobArgs,
        /// How often to ask SLURM about the job, in milliseconds.
        #[arg(long, default_value_t = 500)]
        poll_ms: u64,
    },
}

#[derive(Args)]
struct JobArgs {
    /// Nodes to allocate.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Ranks on each node.
    #[arg(long, default_value_t = 1)]
    ntasks_per_node: usize,
    /// GPUs to ask for on each node (sbatch --gpus-per-node).
    #[arg(long)]
    gpus_per_node: Option<usize>,
    /// Time limit, as sbatch takes it (10, 1:00:00).
    #[arg(long)]
    time: Option<String>,
    /// SLURM partition (queue).
    #[arg(long)]
    partition: Option<String>,
    /// The job's name.
    #[arg(long, default_value = "xpu")]
    job_name: String,
    /// Where the job's output goes (%j: the job id), relative to where it
    /// is submitted from.
    #[arg(long, default_value = "xpu-%j.out")]
    output: String,
    /// How ranks start: mpirun (OpenMPI, reads the allocation from SLURM)
    /// or srun (srun --mpi=pmix, where SLURM has PMIx).
    #[arg(long, default_value = "mpirun", value_parser = parse_launcher)]
    launcher: Launcher,
    /// The command each rank runs, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn parse_launcher(s: &str) -> Result<Launcher, String> {
    Launcher::parse(s).map_err(|e| e.to_string())
}

impl JobArgs {
    fn script(&self) -> xpu::Result<BatchScript> {
        let command: Vec<&str> = self.command.iter().map(String::as_str).collect();
        let mut script = BatchScript::new(self.nodes, self.ntasks_per_node, &command);
        script.gpus_per_node = self.gpus_per_node;
        script.time = self.time.clone();
        script.partition = self.partition.clone();
        script.job_name = self.job_name.clone();
        script.output = self.output.clone();
        script.launcher = self.launcher;
        script.check()?;
        Ok(script)
    }
}

pub fn run(args: &SlurmArgs) -> xpu::Result<()> {
    match &args.action {
        SlurmAction::Script(job) => {
            print!("{}", job.script()?.render());
            Ok(())
        }
        SlurmAction::Submit { job, poll_ms } => {
            let id = slurm::submit(&job.script()?)?;
            println!("submitted job {id}");
            let status = slurm::wait(&id, Duration::from_millis((*poll_ms).max(10)))?;
            let output = status.output.as_deref().unwrap_or("(not reported)");
            println!("job {id}: {}; output in {output}", status.state);
            if status.state != "COMPLETED" {
                return Err(xpu::Error::Io(format!(
                    "job {id} ended {} (see {output})",
                    status.state
                )));
            }
            Ok(())
        }
    }
}
