//! Power states change what a unit really does, between its tasks; the
//! change and each task's state are in the trace; energy adds up.

#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // only the backend is used here, not its `fir` kernel
mod dsp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xpu::backend::cpu::CpuBackend;
use xpu::power::{EnergyProfiles, EnergySource, PowerState};
use xpu::trace::Profile;
use xpu::{DType, Kernel, Placement, Runtime, TaskOptions, UnaryOp};

/// Unit 0 is the builder's CPU unit; unit 1 is `backend`'s (a CPU
/// backend the test can ask how many threads its kernels use, say).
fn runtime_with(backend: Arc<dyn xpu::Backend>) -> Runtime {
    Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(backend)
        .build()
        .unwrap()
}

fn on(unit: usize) -> TaskOptions {
    TaskOptions::default().on(Placement::Unit(unit))
}

fn relu_on(rt: &Runtime, unit: usize) {
    let x = rt.tensor(&[256, 256], vec![-1.0f32; 256 * 256]).unwrap();
    let y = rt.zeros(&[256, 256], DType::F32).unwrap();
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on(unit),
    )
    .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0; 256 * 256]);
}

#[test]
fn a_cpu_unit_in_low_power_runs_its_kernels_on_one_thread_and_the_trace_says_so() {
    let backend = Arc::new(CpuBackend::new(1));
    let rt = runtime_with(backend.clone());
    let normal = backend.threads_of(0);
    relu_on(&rt, 1);
    rt.set_power_state(1, PowerState::LowPower).unwrap();
    assert_eq!(rt.power_state(1).unwrap(), PowerState::LowPower);
    relu_on(&rt, 1);
    assert_eq!(backend.threads_of(0), 1);
    rt.set_power_state(1, PowerState::HighPerformance).unwrap();
    relu_on(&rt, 1);
    assert_eq!(backend.threads_of(0), xpu::host::core_count().max(normal));

    let profile = rt.profile();
    let states: Vec<PowerState> = profile
        .tasks
        .iter()
        .filter(|t| t.unit == 1)
        .map(|t| t.power)
        .collect();
    assert_eq!(
        states,
        [
            PowerState::Normal,
            PowerState::LowPower,
            PowerState::HighPerformance
        ]
    );
    let changes: Vec<(PowerState, PowerState, &str)> = profile
        .power
        .iter()
        .map(|c| (c.from, c.to, c.effect.as_str()))
        .collect();
    assert_eq!(changes.len(), 2, "{:?}", profile.power);
    assert_eq!(
        (changes[0].0, changes[0].1),
        (PowerState::Normal, PowerState::LowPower)
    );
    assert!(
        changes[0].2.starts_with("1 thread(s) per kernel"),
        "{}",
        changes[0].2
    );
    assert!(changes[0].2.contains("parks at once"), "{}", changes[0].2);
    assert_eq!(changes[1].1, PowerState::HighPerformance);

    // The Chrome trace keeps both the changes and each task's state.
    let again = Profile::from_chrome_trace(&profile.chrome_trace()).unwrap();
    assert_eq!(again.power.len(), profile.power.len());
    for (a, b) in again.power.iter().zip(&profile.power) {
        assert_eq!(
            (a.unit, a.from, a.to, &a.effect),
            (b.unit, b.from, b.to, &b.effect)
        );
        assert!((a.at - b.at).abs() < 1e-9, "{a:?} vs {b:?}");
    }
    assert_eq!(
        again.tasks.iter().map(|t| t.power).collect::<Vec<_>>(),
        profile.tasks.iter().map(|t| t.power).collect::<Vec<_>>()
    );
}

#[test]
fn a_state_change_waits_for_the_running_task_to_end() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    static OPEN: AtomicBool = AtomicBool::new(false);
    let held = Kernel::custom("held", &[xpu::Mode::ReadWrite], |_| {
        STARTED.store(true, Ordering::SeqCst);
        while !OPEN.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        Ok(())
    });
    let backend = Arc::new(CpuBackend::new(1));
    let rt = runtime_with(backend.clone());
    let gate = rt.zeros(&[1], DType::F32).unwrap();
    rt.submit_with(&held, &[gate.rw()], on(1)).unwrap();
    while !STARTED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    rt.set_power_state(1, PowerState::LowPower).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        rt.profile().power.is_empty(),
        "applied under a running task"
    );
    OPEN.store(true, Ordering::SeqCst);
    rt.wait_all();
    relu_on(&rt, 1);
    let profile = rt.profile();
    let held_task = profile.tasks.iter().find(|t| t.kernel == "held").unwrap();
    assert_eq!(held_task.power, PowerState::Normal);
    let change = &profile.power[0];
    assert!(
        change.at >= held_task.end - 1e-6,
        "{change:?} vs {held_task:?}"
    );
    let relu = profile.tasks.iter().find(|t| t.kernel == "relu").unwrap();
    assert_eq!(relu.power, PowerState::LowPower);
}

#[test]
fn an_idle_unit_applies_a_state_without_waiting_for_work() {
    let rt = Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .build()
        .unwrap();
    // Let both workers fall asleep first.
    std::thread::sleep(Duration::from_millis(100));
    rt.set_power_state(1, PowerState::LowPower).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.profile().power.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let changes = rt.profile().power;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].unit, changes[0].to), (1, PowerState::LowPower));
    assert!(rt.set_power_state(2, PowerState::Normal).is_err());
}

#[test]
fn energy_is_the_sum_of_its_tasks_idle_and_gated_time_and_says_it_is_modelled() {
    let backend = Arc::new(CpuBackend::new(1));
    let rt = runtime_with(backend.clone());
    for state in PowerState::ALL {
        rt.set_power_state(1, state).unwrap();
        for _ in 0..3 {
            relu_on(&rt, 1);
            relu_on(&rt, 0);
        }
    }
    rt.wait_all();
    let profile = rt.profile();
    let energy = rt.energy();
    let profiles = EnergyProfiles::shipped();
    let cpu = profiles.of(&xpu::UnitKind::Cpu);
    for u in &energy.units {
        let tasks: f64 = profile
            .tasks
            .iter()
            .filter(|t| t.unit == u.unit)
            .map(|t| u.task_joules(t))
            .sum();
        // The counters and the trace time each task with their own clock
        // readings of one start and end.
        let busy = u.busy_joules();
        assert!(
            (busy - tasks).abs() <= 1e-3 * busy + 1e-6,
            "unit {}: {busy} J vs tasks' {tasks} J",
            u.unit
        );
        let whole = busy + u.idle_joules() + u.gated_joules();
        assert!((u.joules() - whole).abs() <= 1e-12 * whole);
        let busy_seconds: f64 = u.busy_seconds.iter().sum();
        assert!(
            (u.idle_seconds + busy_seconds + u.gated_seconds - energy.wall_seconds).abs()
                < 1e-9 + 1e-6 * energy.wall_seconds
        );
        if !energy.any_measured() {
            assert_eq!(
                u.source,
                EnergySource::Modelled {
                    profile: "cpu".into()
                }
            );
            assert_eq!(u.busy_watts, cpu.busy_watts);
        }
    }
    // Unit 1 ran in every state; unit 0 only in Normal.
    assert!(
        energy.units[1].busy_seconds.iter().all(|&s| s > 0.0),
        "{:?}",
        energy.units[1]
    );
    assert_eq!(energy.units[0].busy_seconds[0], 0.0);
    let by_kernel = energy.by_kernel(&profile.tasks);
    assert_eq!(by_kernel.len(), 1);
    assert_eq!(by_kernel[0].0, "relu");
    assert!(
        (by_kernel[0].1 - energy.units.iter().map(|u| u.busy_joules()).sum::<f64>()).abs()
            <= 1e-3 * by_kernel[0].1 + 1e-6
    );
}

#[test]
fn energy_profiles_from_a_directory_replace_the_shipped_ones_and_bad_ones_are_named() {
    let dir = std::env::temp_dir().join(format!("xpu-energy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("cpu.toml"),
        "kind = \"cpu\"\nidle_watts = 1\ngated_watts = 0\nwake_latency_us = 10\n[watts]\nlow-power = 2\nnormal = 3\nhigh-performance = 4\n[speed]\nlow-power = 0.5\nnormal = 1\nhigh-performance = 1.5\n",
    )
    .unwrap();
    let profiles = EnergyProfiles::with_dir(&dir).unwrap();
    assert_eq!(profiles.of(&xpu::UnitKind::Cpu).busy_watts, [2.0, 3.0, 4.0]);
    assert_eq!(
        profiles.of(&xpu::UnitKind::Gpu),
        EnergyProfiles::shipped().of(&xpu::UnitKind::Gpu)
    );
    // A kind without a profile of its own gets the one for any other kind.
    assert_eq!(profiles.of(&xpu::UnitKind::Custom("dsp")).kind, "device");
    std::fs::write(
        dir.join("gpu.toml"),
        "kind = \"gpu\"\nidle_watts = -5\ngated_watts = 0\nwake_latency_us = 10\n[watts]\nlow-power = 2\nnormal = 3\nhigh-performance = 4\n[speed]\nlow-power = 0.5\nnormal = 1\nhigh-performance = 1.5\n",
    )
    .unwrap();
    let err = EnergyProfiles::with_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("gpu.toml") && err.contains("idle_watts is -5"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_backend_without_power_controls_refuses_and_its_unit_stays_as_it_was() {
    let rt = runtime_with(Arc::new(dsp::DspBackend::new(1, 1 << 20)));
    rt.set_power_state(1, PowerState::LowPower).unwrap();
    relu_on(&rt, 1);
    let profile = rt.profile();
    let change = &profile.power[0];
    assert_eq!(
        (change.unit, change.from, change.to),
        (1, PowerState::Normal, PowerState::Normal)
    );
    assert!(
        change.effect.contains("low-power refused") && change.effect.contains("no power controls"),
        "{}",
        change.effect
    );
    assert_eq!(rt.power_state(1).unwrap(), PowerState::Normal);
    let relu = profile.tasks.iter().find(|t| t.unit == 1).unwrap();
    assert_eq!(relu.power, PowerState::Normal);
    assert_eq!(
        rt.energy().units[1].busy_seconds[PowerState::LowPower as usize],
        0.0
    );
}

#[test]
fn gating_wakes_a_unit_when_work_arrives_and_loses_nothing() {
    let rt = Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .gate_after(Some(Duration::from_millis(3)))
        .build()
        .unwrap();
    // Work arrives in bursts with pauses, some longer than the timeout.
    let mut seed = 0x9e37_79b9_u32;
    let mut next = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    let counter = rt.tensor(&[16], vec![0.0f32; 16]).unwrap();
    let one = rt.tensor(&[16], vec![1.0f32; 16]).unwrap();
    let mut outputs = Vec::new();
    let mut added = 0.0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(u64::from(next(12))));
        for _ in 0..=next(3) {
            let placement = match next(3) {
                0 => Placement::Any,
                u => Placement::Unit(u as usize - 1),
            };
            let y = rt.zeros(&[16], DType::F32).unwrap();
            let opts = TaskOptions::default().on(placement);
            rt.submit_with(
                &Kernel::Binary(xpu::BinaryOp::Add),
                &[counter.read(), one.read(), y.write()],
                opts.clone(),
            )
            .unwrap();
            rt.submit_with(
                &Kernel::Unary(UnaryOp::Relu),
                &[y.read(), counter.write()],
                opts,
            )
            .unwrap();
            added += 1.0;
            outputs.push((y, added));
        }
    }
    for (y, want) in &outputs {
        assert_eq!(rt.read::<f32>(y).unwrap(), vec![*want; 16]);
    }
    assert_eq!(rt.read::<f32>(&counter).unwrap(), vec![added; 16]);
    std::thread::sleep(Duration::from_millis(20));
    let profile = rt.profile();
    assert!(!profile.gating.is_empty(), "no unit was gated");
    let woken: Vec<_> = profile.gating.iter().filter(|g| g.woke.is_some()).collect();
    assert!(
        !woken.is_empty(),
        "no gated unit was woken: {:?}",
        profile.gating
    );
    for g in &woken {
        assert!(g.woke.unwrap() >= g.at);
        if let Some(latency) = g.wake_latency {
            assert!((0.0..1.0).contains(&latency), "{g:?}");
        }
    }
    assert!(
        woken.iter().any(|g| g.wake_latency.is_some()),
        "no wake-up measured: {woken:?}"
    );
    // No task started while its unit was gated.
    for t in &profile.tasks {
        assert!(
            !profile.gating.iter().any(|g| g.unit == t.unit
                && g.at < t.start
                && g.woke.is_none_or(|w| t.start < w - 1e-6)),
            "task {} started on gated unit {}",
            t.id,
            t.unit
        );
    }
    let energy = rt.energy();
    assert!(
        energy.units.iter().any(|u| u.gated_seconds > 0.0),
        "{energy:?}"
    );
    for u in &energy.units {
        let busy: f64 = u.busy_seconds.iter().sum();
        assert!(
            (busy + u.idle_seconds + u.gated_seconds - energy.wall_seconds).abs()
                < 1e-6 * energy.wall_seconds + 1e-9,
            "{u:?}"
        );
        assert!(u.gated_joules() == u.gated_seconds * u.gated_watts);
    }
    // The Chrome trace keeps the gatings.
    let again = Profile::from_chrome_trace(&profile.chrome_trace()).unwrap();
    assert_eq!(again.gating.len(), profile.gating.len());
}

/// Twenty 64x64 GEMMs on one CPU unit under the energy policy with
/// `slowdown` (the unit set to `set` first, if given): their profile.
fn gemms_under_the_energy_policy(slowdown: f64, set: Option<PowerState>) -> Profile {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .policy(xpu::Policy::Energy)
        .slowdown(xpu::sched::Slowdown::new(slowdown).unwrap())
        .build()
        .unwrap();
    if let Some(state) = set {
        rt.set_power_state(0, state).unwrap();
    }
    let a = rt.tensor(&[64, 64], vec![1.0f32; 64 * 64]).unwrap();
    let c = rt.zeros(&[64, 64], DType::F32).unwrap();
    for _ in 0..20 {
        rt.submit(&Kernel::gemm(), &[a.read(), a.read(), c.write()])
            .unwrap();
    }
    assert_eq!(rt.read::<f32>(&c).unwrap(), vec![64.0; 64 * 64]);
    rt.profile()
}

#[test]
fn the_energy_policy_runs_tasks_at_low_power_only_where_its_bound_allows() {
    let count = |p: &Profile, state| p.tasks.iter().filter(|t| t.power == state).count();
    // A CPU unit does the most work per joule at low power (the shipped
    // profile: half the speed at 12 W against 28 W, 6 W idle). With room
    // for it, every task but the first (which measures the unit) runs so,
    // on one thread, and the change is in the trace.
    let loose = gemms_under_the_energy_policy(3.0, None);
    assert!(
        count(&loose, PowerState::LowPower) >= 19,
        "{:?}",
        loose.tasks
    );
    assert!(
        loose
            .power
            .iter()
            .any(|c| c.to == PowerState::LowPower && c.effect.contains("1 thread(s) per kernel")),
        "{:?}",
        loose.power
    );
    // Without room, the normal state.
    let tight = gemms_under_the_energy_policy(1.0, None);
    assert_eq!(count(&tight, PowerState::Normal), 20);
    // A state set for the unit is the most the policy chooses.
    let capped = gemms_under_the_energy_policy(1.0, Some(PowerState::LowPower));
    assert_eq!(count(&capped, PowerState::LowPower), 20);
}
