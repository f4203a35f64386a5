//! Profiles and their exports: a known graph's profile holds exactly the
//! tasks and transfers that ran, in an order the dependencies allow; the
//! Chrome trace parses, follows the trace-event format and reads back into
//! the same profile; the Gantt SVG parses and has a row per unit.

// Only the backend is used here, not its `fir` kernel.
#[allow(dead_code)]
#[path = "../examples/custom_unit/dsp.rs"]
mod dsp;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use xpu::trace::Profile;
use xpu::{BinaryOp, DType, Kernel, Placement, Runtime, TaskOptions, UnaryOp, UnitKind, HOST};

fn runtime() -> Runtime {
    Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, 1 << 20)))
        .build()
        .unwrap()
}

const DSP: Placement = Placement::Kind(UnitKind::Custom("dsp"));
const CPU: Placement = Placement::Kind(UnitKind::Cpu);

/// relu(x) -> y on a CPU; y*y -> a on the DSP; y+y -> b on a CPU;
/// a+b -> c on a CPU. Returns the runtime, the task ids in submission
/// order, the DSP's node and the tensor ids of y and a.
fn known_graph() -> (Runtime, Vec<u64>, usize, u64, u64) {
    let rt = runtime();
    let n = 256;
    let x = rt
        .tensor(&[n], (0..n).map(|i| i as f32 - 100.0).collect::<Vec<_>>())
        .unwrap();
    let [y, a, b, c] = [0; 4].map(|_| rt.empty(&[n], DType::F32));
    let on = |p| TaskOptions::default().on(p);
    let tasks = [
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[x.read(), y.write()],
            on(CPU),
        ),
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Mul),
            &[y.read(), y.read(), a.write()],
            on(DSP),
        ),
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Add),
            &[y.read(), y.read(), b.write()],
            on(CPU),
        ),
        rt.submit_with(
            &Kernel::Binary(BinaryOp::Add),
            &[a.read(), b.read(), c.write()],
            on(CPU),
        ),
    ]
    .map(|t| t.unwrap());
    rt.wait_all();
    let got = rt.read::<f32>(&c).unwrap();
    assert_eq!(got[200], 100.0 * 100.0 + 200.0);
    let dsp_node = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Custom("dsp"))
        .unwrap()
        .node;
    let ids = tasks.iter().map(|t| t.id()).collect();
    (rt, ids, dsp_node, y.id(), a.id())
}

#[test]
fn a_known_graph_has_exactly_its_tasks_and_transfers_in_dependency_order() {
    let (rt, ids, dsp_node, y, a) = known_graph();
    let profile = rt.profile();
    let mut got: Vec<u64> = profile.tasks.iter().map(|t| t.id).collect();
    got.sort();
    assert_eq!(got, ids);
    let task: HashMap<u64, _> = profile.tasks.iter().map(|t| (t.id, t)).collect();
    let dsp_unit = rt.units().iter().find(|u| u.node == dsp_node).unwrap().id;
    assert_eq!(task[&ids[1]].unit, dsp_unit);
    assert_ne!(task[&ids[0]].unit, dsp_unit);
    for t in &profile.tasks {
        assert!(
            t.submitted <= t.ready && t.ready <= t.start && t.start <= t.end,
            "{t:?}"
        );
        assert!(t.ok);
    }
    // Each consumer starts after its producers end.
    for (producer, consumer) in [(0, 1), (0, 2), (1, 3), (2, 3)] {
        let (p, c) = (task[&ids[producer]], task[&ids[consumer]]);
        assert!(
            p.end <= c.start,
            "task {} ends after task {} starts",
            p.id,
            c.id
        );
    }
    assert_eq!(task[&ids[1]].released_by, Some(ids[0]));
    let last = task[&ids[3]].released_by.unwrap();
    assert!(last == ids[1] || last == ids[2]);
    let moves: Vec<(u64, usize, usize)> = profile
        .transfers
        .iter()
        .map(|t| (t.tensor, t.from, t.to))
        .collect();
    assert_eq!(moves, vec![(y, HOST, dsp_node), (a, dsp_node, HOST)]);
    // y's upload starts after relu ends and before the multiply ends.
    assert!(profile.transfers[0].at >= task[&ids[0]].end);
    assert!(profile.transfers[0].at <= task[&ids[1]].end);
    let path = profile.critical_path();
    assert_eq!(path.tasks.first(), Some(&ids[0]));
    assert_eq!(path.tasks.last(), Some(&ids[3]));
    assert_eq!(path.tasks.len(), 3);
    assert!(path.busy_seconds <= path.span_seconds);
    let summary = profile.summary();
    assert_eq!(summary.iter().map(|s| s.tasks).sum::<usize>(), 4);
    assert_eq!(summary[dsp_unit].tasks, 1);
    assert_eq!(summary[dsp_unit].bytes_in, 1024);
}

#[test]
fn the_chrome_trace_follows_the_format_and_reads_back() {
    let (rt, ids, _, _, _) = known_graph();
    let profile = rt.profile();
    let text = profile.chrome_trace();
    let root: Value = serde_json::from_str(&text).expect("valid JSON");
    let events = root["traceEvents"].as_array().expect("traceEvents array");
    let mut tasks = 0;
    let mut unit_threads = 0;
    for e in events {
        let ph = e["ph"].as_str().expect("every event has a phase");
        assert!(e["pid"].is_u64() && e["name"].is_string(), "{e}");
        match ph {
            "X" => {
                assert!(e["ts"].as_f64().unwrap() >= 0.0 && e["dur"].as_f64().unwrap() >= 0.0);
                assert!(e["tid"].is_u64());
                if e["cat"] == "task" {
                    tasks += 1;
                    assert_eq!(e["pid"], 1, "tasks are on the units process");
                }
            }
            "M" => {
                assert!(e["args"]["name"].is_string());
                if e["name"] == "thread_name" && e["pid"] == 1 {
                    unit_threads += 1;
                }
            }
            "i" => assert_eq!(e["s"], "t"),
            "C" => assert!(e["args"].is_object()),
            other => panic!("unexpected phase {other}"),
        }
    }
    assert_eq!(tasks, ids.len());
    assert_eq!(unit_threads, rt.units().len(), "one track per unit");
    let back = Profile::from_chrome_trace(&text).unwrap();
    assert_eq!(back.units, profile.units);
    assert_eq!(back.tasks.len(), profile.tasks.len());
    for (a, b) in back.tasks.iter().zip(&profile.tasks) {
        assert_eq!(
            (a.id, &a.kernel, a.unit, a.released_by),
            (b.id, &b.kernel, b.unit, b.released_by)
        );
        assert!((a.start - b.start).abs() < 1e-9 && (a.end - b.end).abs() < 1e-9);
    }
    assert_eq!(back.transfers.len(), profile.transfers.len());
    assert_eq!(back.critical_path().tasks, profile.critical_path().tasks);
    let err = Profile::from_chrome_trace("{\"traceEvents\": []}").unwrap_err();
    assert!(err.to_string().contains("otherData"), "{err}");
    assert!(Profile::from_chrome_trace("not json").is_err());
}

/// The texts of an SVG document.
fn svg_texts<'a>(doc: &'a roxmltree::Document) -> Vec<&'a str> {
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect()
}

#[test]
fn the_gantt_chart_is_svg_with_a_row_per_unit() {
    let (rt, _, _, _, _) = known_graph();
    let svg = rt.profile().gantt_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts = svg_texts(&doc);
    for u in rt.units() {
        let label = format!("unit {} {}", u.id, u.kind);
        assert_eq!(
            texts.iter().filter(|t| **t == label).count(),
            1,
            "{label}: {texts:?}"
        );
    }
    for kernel in ["relu", "mul", "add", "transfer"] {
        assert!(texts.contains(&kernel), "legend lacks {kernel}: {texts:?}");
    }
    assert!(texts
        .iter()
        .any(|t| t.contains("time since the runtime started")));
    let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(bars >= 4 + 2, "a bar per task and transfer, got {bars}");
}

#[test]
fn profiling_off_records_no_tasks_but_the_runtime_works() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .profiling(false)
        .build()
        .unwrap();
    let x = rt.tensor(&[3], vec![-1.0f32, 0.0, 1.0]).unwrap();
    let y = rt.empty(&[3], DType::F32);
    rt.submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])
        .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0, 0.0, 1.0]);
    let p = rt.profile();
    assert!(p.tasks.is_empty() && p.memory.is_empty());
    assert_eq!(rt.report()[0].tasks, 1);
}

#[test]
fn the_gantt_chart_marks_power_state_changes_on_their_unit() {
    let rt = Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .build()
        .unwrap();
    rt.set_power_state(1, xpu::power::PowerState::LowPower)
        .unwrap();
    let x = rt.tensor(&[64], vec![-1.0f32; 64]).unwrap();
    for _ in 0..4 {
        let y = rt.zeros(&[64], DType::F32).unwrap();
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[x.read(), y.write()],
            TaskOptions::default().on(Placement::Unit(1)),
        )
        .unwrap();
    }
    rt.wait_all();
    let profile = rt.profile();
    assert_eq!(profile.power.len(), 1, "{:?}", profile.power);
    let svg = profile.gantt_svg().unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts = svg_texts(&doc);
    assert_eq!(
        texts.iter().filter(|t| **t == "low-power").count(),
        1,
        "{texts:?}"
    );
    assert!(texts.contains(&"power state change"), "{texts:?}");
}
