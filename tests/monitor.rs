//! Monitoring: the Prometheus metrics parse with a real parser and agree
//! with the runtime's own statistics; the sampler sees the host and every
//! unit; queue lengths show ready tasks waiting.

#[allow(dead_code)] // only the backend is used here, not its `fir` kernel
#[path = "../examples/custom_unit/dsp.rs"]
mod dsp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use xpu::{DType, Kernel, Mode, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition")
}

/// The value of `metric` with these labels.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{metric} is not a plain value"),
    }
}

#[test]
fn metrics_parse_and_match_the_runtime_statistics() {
    let rt = Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, 1 << 20)))
        .build()
        .unwrap();
    let dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    let x = rt.tensor(&[64, 64], vec![1.5f32; 64 * 64]).unwrap();
    let y = rt.empty(&[64, 64], DType::F32);
    let z = rt.empty(&[64, 64], DType::F32);
    for _ in 0..5 {
        rt.submit(&Kernel::gemm(), &[x.read(), x.read(), y.write()])
            .unwrap();
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[y.read(), z.write()],
            dsp.clone(),
        )
        .unwrap();
    }
    rt.submit(
        &Kernel::custom("fails", &[Mode::ReadWrite], |_| {
            Err(xpu::Error::Config("no".into()))
        }),
        &[z.rw()],
    )
    .unwrap();
    rt.wait_all();
    rt.read::<f32>(&y).unwrap();

    let scrape = parse(&rt.metrics());
    for (name, help) in &scrape.docs {
        assert!(!help.is_empty(), "{name} has no help");
    }
    assert_eq!(value(&scrape, "xpu_tasks_submitted_total", &[]), 11.0);
    let mut completed = 0.0;
    for r in rt.report() {
        let unit = r.unit.to_string();
        let labels = [("unit", unit.as_str())];
        assert_eq!(
            value(&scrape, "xpu_tasks_completed_total", &labels),
            r.tasks as f64
        );
        assert_eq!(
            value(&scrape, "xpu_tasks_failed_total", &labels),
            r.failed as f64
        );
        assert_eq!(
            value(&scrape, "xpu_unit_fetched_bytes_total", &labels),
            r.bytes_fetched as f64
        );
        assert_eq!(value(&scrape, "xpu_unit_flops_total", &labels), r.flops);
        assert_eq!(value(&scrape, "xpu_queue_length", &labels), 0.0);
        completed += r.tasks as f64;
    }
    assert_eq!(completed, 10.0);
    for n in rt.memory_stats() {
        let node = n.node.to_string();
        let labels = [("node", node.as_str())];
        assert_eq!(
            value(&scrape, "xpu_memory_in_bytes_total", &labels),
            n.bytes_in as f64
        );
        assert_eq!(
            value(&scrape, "xpu_memory_out_bytes_total", &labels),
            n.bytes_out as f64
        );
        assert_eq!(
            value(&scrape, "xpu_memory_allocated_bytes", &labels),
            n.allocated as f64
        );
    }
    let transfers = rt.transfers();
    assert!(!transfers.is_empty());
    assert_eq!(
        value(&scrape, "xpu_transfers_total", &[]),
        transfers.len() as f64
    );
    let bytes: usize = transfers.iter().map(|t| t.bytes).sum();
    assert_eq!(
        value(&scrape, "xpu_transfer_bytes_total", &[]),
        bytes as f64
    );
    let info = value(&scrape, "xpu_unit_info", &[("unit", "2"), ("kind", "dsp")]);
    assert_eq!(info, 1.0);
}

#[test]
fn the_sampler_sees_the_host_and_every_unit() {
    let rt = Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .build()
        .unwrap();
    let monitor = rt.monitor(Duration::from_millis(10));
    let x = rt.tensor(&[256, 256], vec![0.5f32; 256 * 256]).unwrap();
    let y = rt.empty(&[256, 256], DType::F32);
    for _ in 0..50 {
        rt.submit(&Kernel::gemm(), &[x.read(), x.read(), y.write()])
            .unwrap();
    }
    rt.wait_all();
    std::thread::sleep(Duration::from_millis(60));
    let samples = monitor.samples();
    assert!(samples.len() >= 3, "{} samples", samples.len());
    let last = samples.last().unwrap();
    assert!(last.host.memory_total > 0 && last.host.memory_used <= last.host.memory_total);
    assert!(last.host.process_resident > 0);
    assert!(!last.host.cores.is_empty());
    assert!(samples
        .iter()
        .all(|s| (0.0..=100.0).contains(&s.host.cpu_percent)));
    assert_eq!(last.units.len(), 2);
    assert_eq!(last.units.iter().map(|u| u.tasks).sum::<u64>(), 50);
    for pair in samples.windows(2) {
        assert!(pair[0].at < pair[1].at);
        for (a, b) in pair[0].units.iter().zip(&pair[1].units) {
            assert!(a.tasks <= b.tasks);
            assert!((0.0..=1.0).contains(&b.utilisation));
        }
    }
    let scrape = parse(&monitor.metrics());
    assert!(value(&scrape, "xpu_host_memory_total_bytes", &[]) > 0.0);
    assert!(value(&scrape, "xpu_process_resident_bytes", &[]) > 0.0);
}

#[test]
fn queue_lengths_show_ready_tasks_waiting_behind_a_busy_unit() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .build()
        .unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let blocker = Kernel::custom("blocker", &[Mode::ReadWrite], move |_| {
        while !gate.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    });
    let t = rt.zeros(&[1], DType::F32).unwrap();
    rt.submit(&blocker, &[t.rw()]).unwrap();
    // Until the unit has taken the blocker.
    while {
        let q = rt.queued();
        q.per_unit[0] + q.shared > 0
    } {
        std::thread::yield_now();
    }
    for _ in 0..10 {
        rt.submit(&Kernel::Noop, &[]).unwrap();
    }
    let q = rt.queued();
    assert_eq!(q.per_unit.iter().sum::<usize>() + q.shared, 10, "{q:?}");
    let scrape = parse(&rt.metrics());
    let waiting = value(&scrape, "xpu_queue_length", &[("unit", "0")])
        + value(&scrape, "xpu_shared_queue_length", &[]);
    assert_eq!(waiting, 10.0);
    release.store(true, Ordering::Release);
    rt.wait_all();
    let q = rt.queued();
    assert_eq!(q.per_unit.iter().sum::<usize>() + q.shared, 0);
}
