//! The `xpu` command-line tool, run as a user would.

use std::process::Command;

fn xpu(args: &[&str]) -> (bool, String, String) {
    xpu_in(&std::env::temp_dir(), args)
}

/// Runs xpu in `dir` (where the demo writes its trace and chart).
fn xpu_in(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xpu"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("xpu runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_lists_every_unit_and_backend() {
    let (ok, out, err) = xpu(&["--cpu-units", "2", "info"]);
    assert!(ok, "{err}");
    let unit_rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|id| id.parse::<usize>().is_ok())
                && words.next() == Some("cpu")
        })
        .collect();
    assert_eq!(unit_rows.len(), 2, "{out}");
    assert!(
        unit_rows.iter().all(|l| l.trim_end().ends_with("no")),
        "CPU units are not emulated: {out}"
    );
    assert!(
        out.contains("backend cpu") && out.contains("up: 2 unit(s)"),
        "{out}"
    );
}

#[test]
fn demo_checks_results_and_reports_per_unit() {
    let dir = std::env::temp_dir().join(format!("xpu-cli-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, out, err) = xpu_in(
        &dir,
        &[
            "demo",
            "--size",
            "256",
            "--tile",
            "64",
            "--frames",
            "2",
            "--frame-size",
            "64",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("all results match the CPU reference"), "{out}");
    #[cfg(all(feature = "llm", feature = "candle"))]
    if xpu::llm::LanguageModel::default_path().is_ok() {
        // The LPU's answer, the same tokens as on a CPU unit.
        assert!(
            out.contains("language model, 16 greedy tokens (differing) max error 0.00e0"),
            "{out}"
        );
        assert!(out.contains("-> \" Paris."), "{out}");
    }
    // 64 GEMM tiles + 2 frames x 4 + 8 chains x 5.
    assert!(out.contains("ran 112 tasks"), "{out}");
    assert!(out.contains("total: 112 tasks (0 failed)"), "{out}");
    // The trace and the chart are written where it says, by default.
    assert!(err.contains("trace: xpu-trace.json (112 tasks"), "{err}");
    assert!(err.contains("gantt chart: xpu-gantt.svg"), "{err}");
    let trace = std::fs::read_to_string(dir.join("xpu-trace.json")).unwrap();
    assert_eq!(trace.matches("\"cat\":\"task\"").count(), 112);
    assert!(std::fs::read_to_string(dir.join("xpu-gantt.svg"))
        .unwrap()
        .contains("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_has_one_row_per_kernel_unit_and_size() {
    let (ok, out, err) = xpu(&[
        "bench",
        "--kernel",
        "gemm,relu",
        "--sizes",
        "32,64",
        "--unit",
        "cpu",
        "--reps",
        "1",
        "--json",
    ]);
    assert!(ok, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 4, "{out}");
    for row in rows {
        assert!(row["seconds"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["kind"], "cpu");
    }
    assert!(rows
        .iter()
        .any(|r| r["kernel"] == "gemm" && r["size"] == 64 && r["gflops"].as_f64().unwrap() > 0.0));
}

#[test]
fn bench_dags_report_their_figures() {
    let (ok, out, err) = xpu(&[
        "bench", "--dag", "cholesky", "--size", "256", "--tile", "64", "--dtype", "f64", "--json",
    ]);
    assert!(ok, "{err}");
    let run: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(run["residual"].as_f64().unwrap() < 1e-12, "{run}");
    assert_eq!(run["tasks"], 20);
    let (ok, out, err) = xpu(&["bench", "--dag", "chain", "--tasks", "2000"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("xpu chain ") && out.contains("us/task"),
        "{out}"
    );
    // One line per policy, each naming it.
    let (ok, out, err) = xpu(&[
        "--no-history",
        "bench",
        "--dag",
        "cholesky",
        "--size",
        "256",
        "--tile",
        "64",
        "--policies",
        "eager,dmda,dmdas",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("GFLOP/s")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, policy) in lines.iter().zip(["eager", "dmda", "dmdas"]) {
        assert!(line.ends_with(&format!("policy {policy})")), "{line}");
    }
    let (ok, _, err) = xpu(&["bench", "--policies", "dmda"]);
    assert!(!ok && err.contains("add --dag"), "{err}");
}

#[test]
fn bad_input_gets_a_clear_error_and_a_failing_exit() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["bench", "--kernel", "fft"],
            "no benchmark for kernel `fft`",
        ),
        (&["bench", "--unit", "99"], "unit 99 (this machine has"),
        (
            &[
                "bench", "--dag", "cholesky", "--size", "100", "--tile", "64",
            ],
            "cannot be split",
        ),
        (
            &["bench", "--dag", "cholesky", "--dtype", "u8"],
            "f32 or f64",
        ),
        (&["--policy", "fastest", "info"], "unknown policy `fastest`"),
    ];
    for (args, needle) in cases {
        let (ok, _, err) = xpu(args);
        assert!(!ok, "{args:?} must fail");
        assert!(
            err.contains(needle),
            "{args:?}: `{err}` should mention `{needle}`"
        );
    }
}

#[test]
fn a_required_backend_that_is_missing_fails_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_xpu"))
        .arg("info")
        .env("XPU_REQUIRE_BACKENDS", "cpu,warp-drive")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`warp-drive` is required") && err.contains("not compiled into this build"),
        "{err}"
    );
}

#[test]
fn a_traced_run_can_be_summarised_and_drawn() {
    let dir = std::env::temp_dir().join(format!("xpu-cli-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (trace, gantt) = (dir.join("run.json"), dir.join("run.svg"));
    let (ok, _, err) = xpu(&[
        "--cpu-only",
        "--cpu-units",
        "2",
        "--trace",
        trace.to_str().unwrap(),
        "bench",
        "--dag",
        "cholesky",
        "--size",
        "256",
        "--tile",
        "64",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("trace: "), "{err}");
    let (ok, out, err) = xpu(&[
        "--gantt",
        gantt.to_str().unwrap(),
        "trace",
        trace.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    // Tiled Cholesky 4x4: 4 potrf, 6 trsm, 6 syrk and 4 gemm tasks.
    assert!(out.contains(": 20 tasks on 2 units"), "{out}");
    assert!(
        out.contains("unit 0 cpu") && out.contains("unit 1 cpu"),
        "{out}"
    );
    assert!(out.contains("critical path: "), "{out}");
    let svg = std::fs::read_to_string(&gantt).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("potrf"),
        "not a chart of the run"
    );
    // Two traces (as two ranks would write): each summarised, then merged.
    let merged = dir.join("job.json");
    let (ok, out, err) = xpu(&[
        "trace",
        trace.to_str().unwrap(),
        trace.to_str().unwrap(),
        "--merge",
        merged.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.matches(": 20 tasks on 2 units").count(), 2, "{out}");
    let job: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    let tasks = job["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == "task")
        .count();
    assert_eq!(tasks, 40, "both runs' tasks in one timeline");
    assert_eq!(job["otherData"]["parts"].as_array().unwrap().len(), 2);
    let (ok, _, err) = xpu(&["trace", dir.join("missing.json").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.json"), "{err}");
    std::fs::write(dir.join("bad.json"), "{}").unwrap();
    let (ok, _, err) = xpu(&["trace", dir.join("bad.json").to_str().unwrap()]);
    assert!(!ok && err.contains("not a valid xpu trace"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn monitor_prints_samples_and_prometheus_metrics() {
    let (ok, out, err) = xpu(&[
        "--cpu-only",
        "--cpu-units",
        "2",
        "monitor",
        "--period-ms",
        "50",
        "--workload",
        "idle",
        "--seconds",
        "0.3",
        "--prometheus",
    ]);
    assert!(ok, "{err}");
    let samples: Vec<&str> = out.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(samples.len() >= 3, "{out}");
    assert!(samples
        .iter()
        .all(|l| l.contains("unit 0 cpu: ") && l.contains("unit 1 cpu: ")));
    let metrics: Vec<&str> = out.lines().filter(|l| !l.starts_with("t=")).collect();
    assert!(
        metrics
            .iter()
            .any(|l| l.starts_with("xpu_host_memory_total_bytes ")),
        "{out}"
    );
    assert!(
        metrics
            .iter()
            .any(|l| l.starts_with("xpu_tasks_completed_total{unit=\"1\",kind=\"cpu\"} 0")),
        "{out}"
    );
    let (ok, _, err) = xpu(&["monitor", "--workload", "nothing"]);
    assert!(!ok && err.contains("nothing"), "{err}");
}

#[test]
fn bench_plot_draws_a_panel_per_kernel_and_a_line_per_unit() {
    let path = std::env::temp_dir().join(format!("xpu-cli-plot-{}.svg", std::process::id()));
    let (ok, _, err) = xpu(&[
        "--cpu-only",
        "--cpu-units",
        "2",
        "bench",
        "--kernel",
        "gemm,add",
        "--sizes",
        "64,128",
        "--unit",
        "0,1",
        "--reps",
        "1",
        "--plot",
        path.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let svg = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for needle in [
        "gemm (f32)",
        "add (f32)",
        "GFLOP/s",
        "GB/s",
        "64",
        "128",
        "unit 0 cpu",
        "unit 1 cpu",
    ] {
        assert!(texts.contains(&needle), "no `{needle}` in {texts:?}");
    }
    // Two panels x two units: a data line (the 2-pixel polylines; the grid
    // is drawn 1 pixel wide) per unit per panel, two points each.
    let lines: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .collect();
    assert_eq!(lines.len(), 4);
    for l in lines {
        assert_eq!(l.attribute("points").unwrap().split_whitespace().count(), 2);
    }
    std::fs::remove_file(&path).unwrap();
}

#[cfg(all(feature = "llm", feature = "candle"))]
#[test]
fn generate_streams_an_answer_with_tokens_per_second() {
    if xpu::llm::LanguageModel::default_path().is_err() {
        assert!(std::env::var("CI").is_err(), "the model is not fetched");
        eprintln!("model not fetched: skipped");
        return;
    }
    let (ok, out, err) = xpu(&["generate", "The capital of France is", "--max-tokens", "6"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("The capital of France is Paris."), "{out}");
    assert!(out.contains("unit: lpu"), "{out}");
    for line in ["prompt: 5 tokens in", "generation: 6 tokens in"] {
        assert!(out.contains(line), "{out}");
    }
    assert!(out.contains("tokens/s"), "{out}");

    let (ok, _, err) = xpu(&["generate", "Hi", "--temperature=-1"]);
    assert!(!ok);
    assert!(err.contains("--temperature must be above 0"), "{err}");
    let (ok, _, err) = xpu(&["generate", "Hi", "--model", "/nonexistent/model.gguf"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}

/// A fresh directory for a test's history file, and the file's path.
fn history_in(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("xpu-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("history.sqlite").to_string_lossy().into_owned();
    (dir, file)
}

/// `xpu perfmodel show --kernel gemm` on `history`: its output.
fn gemm_models(history: &str) -> String {
    let (ok, out, err) = xpu(&[
        "--history",
        history,
        "perfmodel",
        "show",
        "--kernel",
        "gemm",
    ]);
    assert!(ok, "{err}");
    out
}

#[test]
fn a_dmda_run_leaves_a_history_and_models_to_list() {
    let (dir, history) = history_in("history");
    let history = history.as_str();
    let (ok, out, err) = xpu(&["--history", history, "history"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("no task history at"), "{err}");
    let (ok, out, err) = xpu_in(
        &dir,
        &[
            "--cpu-only",
            "--policy",
            "dmda",
            "--history",
            history,
            "demo",
        ],
    );
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = xpu(&["--history", history, "history", "--kernel", "gemm"]);
    assert!(ok, "{err}");
    assert!(out.contains("1 runs"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("gemm") && l.contains("cpu/cpu/")),
        "{out}"
    );
    let out = gemm_models(history);
    let row = out
        .lines()
        .find(|l| l.starts_with("gemm"))
        .unwrap_or_else(|| panic!("no gemm model: {out}"));
    assert!(row.contains("*n^"), "a fitted law: {row}");
    // The last tasks, each with its footprint in words.
    let (ok, out, err) = xpu(&[
        "--history",
        history,
        "history",
        "--kernel",
        "gemm",
        "--tasks",
        "3",
    ]);
    assert!(ok, "{err}");
    let listed: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("footprint"))
        .skip(1)
        .collect();
    assert_eq!(listed.len(), 3, "{out}");
    assert!(
        listed.iter().all(|l| l.starts_with("gemm")
            && l.contains(" f32 R, ")
            && l.ends_with(" f32 W")
            || l.ends_with(" f32 RW")),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn calibrate_measures_every_unit_and_stores_the_models() {
    let (dir, history) = history_in("calibrate");
    let history = history.as_str();
    let (ok, out, err) = xpu(&[
        "--history",
        history,
        "calibrate",
        "--quick",
        "--kernel",
        "relu,gemm",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("calibrated"), "{out}");
    // Every CPU unit has a model of each kernel, and it was stored.
    let cpu_rows = out
        .lines()
        .filter(|l| l.starts_with("relu") && l.contains(" cpu "))
        .count();
    assert!(cpu_rows >= 1, "{out}");
    let out = gemm_models(history);
    assert!(
        out.lines()
            .any(|l| l.starts_with("gemm") && l.contains("cpu/cpu/")),
        "{out}"
    );
    let svg = dir.join("gemm.svg");
    let (ok, out, err) = xpu(&[
        "--history",
        history,
        "perfmodel",
        "plot",
        "--kernel",
        "gemm",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the chart is SVG");
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    // Two sizes per CPU unit, measured; and a fitted line per unit.
    assert!(count("circle") >= 4, "{} points", count("circle"));
    assert!(count("polyline") >= 2, "{} lines", count("polyline"));
    let (ok, _, err) = xpu(&["--no-history", "calibrate", "--quick"]);
    assert!(!ok && err.contains("--no-history"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sim_reports_each_policy_against_the_bound_and_draws_each_schedule() {
    let dir = std::env::temp_dir().join(format!("xpu-cli-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let platform =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("platforms/laptop-igpu.toml");
    let platform = platform.to_str().unwrap();
    let (ok, out, err) = xpu_in(
        &dir,
        &[
            "--gantt",
            "lu.svg",
            "sim",
            "--platform",
            platform,
            "--dag",
            "lu",
            "--tiles",
            "6",
            "--policies",
            "eager,dmda",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("simulated: lu 6x6 tiles of 1920 (91 tasks) on platform `laptop-igpu`"),
        "{out}"
    );
    assert!(out.contains("lower bound"), "{out}");
    for policy in ["eager", "dmda"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(policy))
            .unwrap_or_else(|| panic!("{policy}: {out}"));
        let ratio: f64 = line
            .split_whitespace()
            .nth(3)
            .and_then(|r| r.trim_end_matches('x').parse().ok())
            .expect(line);
        assert!(ratio >= 1.0, "{line}");
        let svg = std::fs::read_to_string(dir.join(format!("lu-{policy}.svg")))
            .expect("a chart per policy");
        assert!(svg.contains("(simulated)"));
    }
    assert!(out.contains("peak resident memory"), "{out}");
    let (ok, _, err) = xpu(&["sim", "--platform", platform, "--dag", "qr"]);
    assert!(!ok && err.contains("unknown --dag `qr`"), "{err}");
    let (ok, _, err) = xpu(&["sim", "--platform", "/nonexistent.toml"]);
    assert!(!ok && err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn vision_times_warm_runs_per_stage_and_streams_checked_frames() {
    let dir = std::env::temp_dir().join(format!("xpu-cli-vision-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, output) = (dir.join("in.png"), dir.join("out.png"));
    let (h, w) = (48usize, 64usize);
    let data = (0..h * w * 3).map(|i| ((i * 37) % 251) as u8).collect();
    xpu::vision::save_png(
        &input,
        &xpu::vision::Pixels {
            shape: vec![h, w, 3],
            data,
        },
    )
    .unwrap();
    let (ok, out, err) = xpu(&[
        "--cpu-only",
        "vision",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
        "--bench",
        "3",
        "--frames",
        "4",
    ]);
    assert!(ok, "{err}");
    // Fused by default: gray+blur and Sobel+threshold, a task each.
    let warm: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("warm, median of 3 runs: "))
        .take(3)
        .collect();
    assert_eq!(warm.len(), 3, "{out}");
    for (line, stage) in warm[1..]
        .iter()
        .zip(["gray+blur=1.5", "sobel+threshold=96"])
    {
        assert!(
            line.trim_start().starts_with(stage) && line.ends_with(" ms"),
            "{out}"
        );
    }
    assert!(out.contains("streamed 4 frames, two in flight: "), "{out}");
    // CPU units compute on host memory: nothing moves.
    assert!(out.contains("moved 0.00 MB between memory nodes"), "{out}");
    assert!(
        out.contains("every frame checked against the CPU path: max difference 0"),
        "{out}"
    );
    // A task per stage gives the same edge map.
    let unfused = dir.join("unfused.png");
    let (ok, out, err) = xpu(&[
        "--cpu-only",
        "vision",
        input.to_str().unwrap(),
        "--out",
        unfused.to_str().unwrap(),
        "--unfused",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("through 4 stages"), "{out}");
    let edges = xpu::vision::load_png(&output).unwrap();
    assert!(edges.data.contains(&255) && edges.data.contains(&0));
    assert_eq!(edges, xpu::vision::load_png(&unfused).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn slurm_script_passes_the_allocation_and_gpus_through() {
    let (ok, out, err) = xpu(&[
        "slurm",
        "script",
        "--nodes",
        "2",
        "--ntasks-per-node",
        "3",
        "--gpus-per-node",
        "1",
        "--",
        "./app",
        "--size",
        "two words",
    ]);
    assert!(ok, "{err}");
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=3",
        "#SBATCH --gpus-per-node=1",
        "mpirun --oversubscribe -np \"$SLURM_NTASKS\" ./app --size 'two words'",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
    let (ok, _, err) = xpu(&["slurm", "script", "--nodes", "0", "--", "true"]);
    assert!(!ok);
    assert!(err.contains("at least one node"), "{err}");
}

#[test]
fn slurm_submit_without_slurm_says_what_is_missing() {
    let empty = std::env::temp_dir().join("xpu-no-slurm-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xpu"))
        .args(["slurm", "submit", "--", "hostname"])
        .env("PATH", &empty)
        .output()
        .expect("xpu runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot run `sbatch`"), "{err}");
    assert!(err.contains("slurm-client"), "{err}");
}

#[test]
fn the_traces_of_ranks_count_the_bytes_sent_between_them() {
    use xpu::cluster::ranks::{Ranks, Threads};
    let dir = std::env::temp_dir().join(format!("xpu-cli-ranks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two ranks (threads): a on rank 0 and b on rank 1, each added to the
    // other's tensor: one 64-byte copy each way.
    let handles: Vec<_> = Threads::group(2)
        .into_iter()
        .map(|transport| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let rt = xpu::Runtime::builder()
                    .cpu_units(1)
                    .device_discovery(false)
                    .build()
                    .unwrap();
                let ranks = Ranks::new(rt, transport).unwrap();
                let a = ranks.tensor(0, &[16], || vec![1.0f32; 16]).unwrap();
                let b = ranks.tensor(1, &[16], || vec![2.0f32; 16]).unwrap();
                let add = xpu::Kernel::Binary(xpu::BinaryOp::Add);
                let (c, d) = (
                    ranks.empty(0, &[16], xpu::DType::F32).unwrap(),
                    ranks.empty(1, &[16], xpu::DType::F32).unwrap(),
                );
                ranks
                    .submit(&add, &[a.read(), b.read(), c.write()])
                    .unwrap();
                ranks
                    .submit(&add, &[a.read(), b.read(), d.write()])
                    .unwrap();
                ranks.wait_all();
                let path = dir.join(format!("rank-{}.json", ranks.rank()));
                ranks.runtime().profile().write_chrome_trace(&path).unwrap();
                ranks.finish().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (r0, r1) = (dir.join("rank-0.json"), dir.join("rank-1.json"));
    let (ok, out, err) = xpu(&["trace", r0.to_str().unwrap(), r1.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("rank 1 -> host: 1 copies, 64 B"), "{out}");
    assert!(out.contains("host -> rank 1: 1 copies, 64 B"), "{out}");
    assert!(out.contains("between ranks: 2 copies sent, 128 B"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn power_set_keeps_a_state_for_later_runs_whose_traces_report_energy() {
    let dir = std::env::temp_dir().join(format!("xpu-cli-power-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xpu"))
            .args(["--cpu-only", "--cpu-units", "2", "--no-history"])
            .args(args)
            .current_dir(&dir)
            .env("XPU_DATA_DIR", &dir)
            .output()
            .expect("xpu runs");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, out, err) = run(&["power", "set", "1", "low-power"]);
    assert!(ok, "{err}");
    assert!(out.contains("unit 1 (cpu) will run in low-power"), "{out}");
    let (ok, _, err) = run(&["power", "set", "1", "turbo"]);
    assert!(!ok && err.contains("unknown power state `turbo`"), "{err}");
    let (ok, out, err) = run(&["power"]);
    assert!(ok, "{err}");
    let row = |id: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        row("0").contains("normal") && row("1").contains("low-power"),
        "{out}"
    );
    assert!(
        out.contains("modelled") || out.contains("measured"),
        "{out}"
    );

    let trace = dir.join("t.json");
    let trace_arg = trace.to_str().unwrap();
    let (ok, _, err) = run(&[
        "--trace", trace_arg, "bench", "--dag", "gemm", "--size", "256", "--tile", "64",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["power", "--trace", trace_arg]);
    assert!(ok, "{err}");
    assert!(out.contains("per kernel") && out.contains("gemm"), "{out}");
    let (ok, out, err) = run(&["trace", trace_arg]);
    assert!(ok, "{err}");
    assert!(
        out.contains("energy over") && out.contains("total:"),
        "{out}"
    );
    let profile =
        xpu::trace::Profile::from_chrome_trace(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let unit1: Vec<_> = profile.tasks.iter().filter(|t| t.unit == 1).collect();
    assert!(
        !unit1.is_empty()
            && unit1
                .iter()
                .all(|t| t.power == xpu::power::PowerState::LowPower),
        "unit 1 ran in the kept state"
    );

    // Each unit gated and woken up to three times, its median wake-up printed.
    let (ok, out, err) = run(&["power", "wake", "--rounds", "3"]);
    assert!(ok, "{err}");
    for id in ["0", "1"] {
        let row: Vec<&str> = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        // unit, kind, device words..., wake-ups, median, profile
        let n = row.len();
        // (A round the machine's load kept from gating measures nothing.)
        assert!(
            n >= 5
                && row[n - 3]
                    .parse::<usize>()
                    .is_ok_and(|w| (1..=3).contains(&w)),
            "{out}"
        );
        assert!(row[n - 2].parse::<f64>().is_ok_and(|m| m > 0.0), "{out}");
    }

    std::fs::write(dir.join("power.toml"), "[states]\n\"x\" = \"normal\"\n").unwrap();
    let (ok, _, err) = run(&["info"]);
    assert!(
        !ok && err.contains("power.toml") && err.contains("`x` is not a unit id"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
