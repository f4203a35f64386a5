//! Faults never hang the runtime: panicking kernels, failures that travel
//! only with data, lost devices, eviction under pressure, bounded records,
//! cancellation, and the random fault suite against a sequential replay.

#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // `fir` is not used here
mod dsp;
#[path = "common/faults.rs"]
#[allow(dead_code)] // `rss_bytes` is for the soak
mod faults;
#[path = "common/rng.rs"]
mod rng;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xpu::{
    Arg, ArgMeta, Backend, BinaryOp, DType, DeviceBuffer, Error, Job, Kernel, Mode, Placement,
    Policy, Result, Runtime, TaskOptions, UnaryOp, UnitDesc, UnitKind,
};

fn relu() -> Kernel {
    Kernel::Unary(UnaryOp::Relu)
}

fn add() -> Kernel {
    Kernel::Binary(BinaryOp::Add)
}

fn cpu_runtime(units: usize, policy: Policy) -> Runtime {
    Runtime::builder()
        .cpu_units(units)
        .policy(policy)
        .device_discovery(false)
        .build()
        .unwrap()
}

/// A kernel that sleeps, then fails.
fn slow_failure(ms: u64) -> Kernel {
    Kernel::custom("slow-failure", &[Mode::ReadWrite], move |_| {
        std::thread::sleep(Duration::from_millis(ms));
        Err(Error::Device {
            backend: "cpu".into(),
            message: "injected".into(),
        })
    })
}

/// Reads `x` and `y`, writes their sum to `out`, on the CPU.
fn read_two() -> Kernel {
    Kernel::custom("read-two", &[Mode::Read, Mode::Read, Mode::Write], |args| {
        let x = args[0].as_f32()?.to_vec();
        let y = args[1].as_f32()?.to_vec();
        for ((o, a), b) in args[2].as_f32_mut()?.iter_mut().zip(&x).zip(&y) {
            *o = a + b;
        }
        Ok(())
    })
}

#[test]
fn a_panicking_kernel_fails_its_task_and_the_unit_keeps_serving() {
    for policy in Policy::ALL {
        let rt = cpu_runtime(2, policy);
        let p = rt.tensor(&[4], vec![1.0f32; 4]).unwrap().named("p");
        let boom = Kernel::custom("boom", &[Mode::ReadWrite], |_| panic!("boom"));
        let t = rt
            .submit_with(
                &boom,
                &[p.rw()],
                TaskOptions::default().on(Placement::Unit(0)),
            )
            .unwrap();
        match rt.wait(&t).unwrap_err() {
            Error::KernelFailed {
                task,
                kernel,
                unit,
                reason,
            } => {
                assert_eq!((task, kernel.as_str(), unit), (t.id(), "boom", 0));
                assert!(reason.contains("boom"), "{reason}");
            }
            other => panic!("expected a kernel failure, got {other}"),
        }
        let err = rt.read::<f32>(&p).unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
        assert!(err.to_string().contains("`p`"), "{err}");
        // The same unit runs the next task, and the whole runtime shuts down.
        let x = rt.tensor(&[3], vec![-1.0f32, 0.5, 2.0]).unwrap();
        let y = rt.empty(&[3], DType::F32);
        let next = rt
            .submit_with(
                &relu(),
                &[x.read(), y.write()],
                TaskOptions::default().on(Placement::Unit(0)),
            )
            .unwrap();
        rt.wait(&next).unwrap();
        assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0, 0.5, 2.0]);
        rt.shutdown();
    }
}

#[test]
fn a_failure_travels_with_data_whatever_the_timing() {
    for wait_first in [false, true] {
        let rt = cpu_runtime(2, Policy::WorkStealing);
        let x = rt.tensor(&[2], vec![1.0f32, 2.0]).unwrap();
        let y = rt.tensor(&[2], vec![3.0f32, 4.0]).unwrap();
        let a = rt.tensor(&[2], vec![-5.0f32, 6.0]).unwrap();
        let out = rt.empty(&[2], DType::F32);
        let f = rt.submit(&slow_failure(20), &[x.rw()]).unwrap();
        let r = rt
            .submit(&read_two(), &[x.read(), y.read(), out.write()])
            .unwrap();
        if wait_first {
            assert!(rt.wait(&f).is_err());
            assert!(rt.wait(&r).is_err());
        }
        // Write-after-read on y: ordered after R, but it reads only `a`.
        let w = rt.submit(&relu(), &[a.read(), y.write()]).unwrap();
        rt.wait(&w).unwrap();
        assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0, 6.0]);
        match rt.wait(&r).unwrap_err() {
            Error::DependencyFailed { failed_task, .. } => assert_eq!(failed_task, f.id()),
            other => panic!("expected a dependency failure, got {other}"),
        }
        assert!(matches!(rt.read::<f32>(&out), Err(Error::Poisoned { .. })));
        // Write-after-write: a writer that does not read x clears its poison.
        let fresh = rt.submit(&relu(), &[a.read(), x.write()]).unwrap();
        rt.wait(&fresh).unwrap();
        assert_eq!(rt.read::<f32>(&x).unwrap(), vec![0.0, 6.0]);
    }
}

#[test]
fn explicit_edges_pass_a_failure_on() {
    let rt = cpu_runtime(2, Policy::Eager);
    let x = rt.tensor(&[2], vec![1.0f32, 2.0]).unwrap();
    let a = rt.tensor(&[2], vec![-1.0f32, 1.0]).unwrap();
    let b = rt.empty(&[2], DType::F32);
    let f = rt.submit(&slow_failure(10), &[x.rw()]).unwrap();
    // Shares no tensor with F, but names it explicitly.
    let t = rt
        .submit_with(
            &relu(),
            &[a.read(), b.write()],
            TaskOptions::default().after(&f),
        )
        .unwrap();
    match rt.wait(&t).unwrap_err() {
        Error::DependencyFailed { failed_task, .. } => assert_eq!(failed_task, f.id()),
        other => panic!("expected a dependency failure, got {other}"),
    }
    // An edge to a task that already failed fails at once too.
    let late = rt
        .submit_with(
            &relu(),
            &[a.read(), b.write()],
            TaskOptions::default().after(&f),
        )
        .unwrap();
    assert!(matches!(
        rt.wait(&late),
        Err(Error::DependencyFailed { .. })
    ));
    // A successful explicit predecessor passes nothing on.
    let ok = rt.submit(&relu(), &[a.read(), b.write()]).unwrap();
    let after_ok = rt
        .submit_with(
            &relu(),
            &[a.read(), x.write()],
            TaskOptions::default().after(&ok),
        )
        .unwrap();
    rt.wait(&after_ok).unwrap();
    assert_eq!(rt.read::<f32>(&x).unwrap(), vec![0.0, 1.0]);
}

/// The DSP backend of `examples/custom_unit`, whose device can be lost: a
/// kernel named `lose-device` sleeps a moment, then reports the device gone;
/// and whose uploads panic while `panic_on_upload` is set.
struct FlakyDsp(dsp::DspBackend, AtomicBool);

impl FlakyDsp {
    fn new() -> FlakyDsp {
        FlakyDsp(dsp::DspBackend::new(1, 1 << 20), AtomicBool::new(false))
    }
}

impl Backend for FlakyDsp {
    fn name(&self) -> &str {
        "flaky"
    }
    fn units(&self) -> Vec<UnitDesc> {
        self.0.units()
    }
    fn alloc(&self, memory: usize, bytes: usize) -> Result<DeviceBuffer> {
        self.0.alloc(memory, bytes)
    }
    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> Result<()> {
        if self.1.load(Ordering::Relaxed) {
            panic!("the DMA engine jammed");
        }
        self.0.upload(dst, src)
    }
    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> Result<()> {
        self.0.download(src, dst)
    }
    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.0.supports(unit, kernel, args)
    }
    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> Result<()> {
        if kernel.name() == "lose-device" {
            std::thread::sleep(Duration::from_millis(50));
            return Err(Error::DeviceLost {
                backend: "flaky".into(),
                message: "the DSP fell off the bus".into(),
            });
        }
        self.0.launch(unit, kernel, args)
    }
}

fn lose_device() -> Kernel {
    Kernel::custom("lose-device", &[Mode::ReadWrite], |_| Ok(()))
}

#[test]
fn a_lost_device_takes_its_unit_out_of_service() {
    const DSP: Placement = Placement::Kind(UnitKind::Custom("dsp"));
    for policy in Policy::ALL {
        let rt = Runtime::builder()
            .cpu_units(1)
            .policy(policy)
            .device_discovery(false)
            .backend(Arc::new(FlakyDsp::new()))
            .build()
            .unwrap();
        let dsp_unit = rt.units().iter().find(|u| u.backend == "flaky").unwrap().id;
        let on_dsp = || TaskOptions::default().on(DSP);
        let src = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0]).unwrap();
        // `kept` is read back (a host copy is valid); `only_there` is not.
        let kept = rt.empty(&[4], DType::F32).named("kept");
        let only_there = rt.empty(&[4], DType::F32).named("only-there");
        rt.submit_with(&relu(), &[src.read(), kept.write()], on_dsp())
            .unwrap();
        rt.submit_with(&relu(), &[src.read(), only_there.write()], on_dsp())
            .unwrap();
        assert_eq!(rt.read::<f32>(&kept).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);

        let z = rt.tensor(&[4], vec![0.0f32; 4]).unwrap();
        let lost = rt.submit_with(&lose_device(), &[z.rw()], on_dsp()).unwrap();
        // Ordered behind the loss (they write z after it, without reading
        // it): one only the DSP can run, and one any unit can.
        let stranded = rt
            .submit_with(&relu(), &[src.read(), z.write()], on_dsp())
            .unwrap();
        let movable = rt.submit(&relu(), &[src.read(), z.write()]).unwrap();

        let err = rt.wait(&lost).unwrap_err().to_string();
        assert!(
            err.contains("device lost") && err.contains("fell off the bus"),
            "{err}"
        );
        let info = &rt.units()[dsp_unit];
        assert!(info.is_down(), "{policy:?}");
        assert!(info.down_reason().unwrap().contains("fell off the bus"));
        assert!(!rt.units()[0].is_down());

        match rt.wait(&stranded).unwrap_err() {
            Error::UnitDown { unit, reason } => {
                assert_eq!(unit, dsp_unit);
                assert!(reason.contains("fell off the bus"), "{reason}");
            }
            other => panic!("{policy:?}: expected the stranded task to fail, got {other}"),
        }
        rt.wait(&movable).unwrap();
        assert_eq!(rt.read::<f32>(&z).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);
        // Data with a valid copy elsewhere stays readable; data whose only
        // copy was on the lost device is poisoned, naming the loss.
        assert_eq!(rt.read::<f32>(&kept).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);
        let gone = rt.read::<f32>(&only_there).unwrap_err().to_string();
        assert!(
            gone.contains("only-there") && gone.contains("device lost"),
            "{gone}"
        );
        // Later tasks go elsewhere; pinned to the lost unit they are refused.
        let later = rt
            .submit(&relu(), &[src.read(), only_there.write()])
            .unwrap();
        rt.wait(&later).unwrap();
        assert_eq!(
            rt.read::<f32>(&only_there).unwrap(),
            vec![0.0, 2.0, 0.0, 4.0]
        );
        let refused = rt
            .submit_with(&relu(), &[src.read(), kept.write()], on_dsp())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("is down"), "{refused}");
        assert!(rt.memory_stats()[info.node].lost);
        rt.shutdown();
    }
}

#[test]
fn a_panic_in_a_backend_from_outside_the_crate_fails_only_its_task() {
    let backend = Arc::new(FlakyDsp::new());
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(backend.clone())
        .build()
        .unwrap();
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    // In the kernel.
    let x = rt.tensor(&[2], vec![1.0f32, 2.0]).unwrap();
    let boom = Kernel::custom("boom", &[Mode::ReadWrite], |_| panic!("inside the DSP"));
    let t = rt.submit_with(&boom, &[x.rw()], on_dsp.clone()).unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(
        err.contains("inside the DSP") && err.contains("`boom`"),
        "{err}"
    );
    // In the copy of an input to the device.
    backend.1.store(true, Ordering::Relaxed);
    let y = rt.tensor(&[2], vec![-1.0f32, 3.0]).unwrap();
    let out = rt.empty(&[2], DType::F32);
    let t = rt
        .submit_with(&relu(), &[y.read(), out.write()], on_dsp.clone())
        .unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(err.contains("the DMA engine jammed"), "{err}");
    backend.1.store(false, Ordering::Relaxed);
    // The unit goes on.
    rt.submit_with(&relu(), &[y.read(), out.write()], on_dsp)
        .unwrap();
    assert_eq!(rt.read::<f32>(&out).unwrap(), vec![0.0, 3.0]);
    assert!(backend.0.launches() >= 2);
}

/// The case: outputs read back as they complete while a pinned
/// device evicts; every working set fits, so nothing may fail.
#[test]
fn eviction_under_pressure_waits_instead_of_failing() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_memory_limit(3072)
        .build()
        .unwrap();
    let devices: Vec<usize> = rt
        .units()
        .iter()
        .filter(|u| u.node != xpu::HOST)
        .map(|u| u.id)
        .collect();
    let ins: Vec<_> = (0..8)
        .map(|i| rt.tensor(&[256], vec![i as f32; 256]).unwrap())
        .collect();
    for &unit in &devices {
        let mut failures = Vec::new();
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            let reader = scope.spawn(|| {
                let rx = rx;
                let mut errors = Vec::new();
                for (r, out) in rx {
                    let out: xpu::Tensor = out;
                    match rt.read::<f32>(&out) {
                        Ok(v) => {
                            let want = (r % 8) as f32 + ((r * 3 + 1) % 8) as f32;
                            assert!(v.iter().all(|&x| x == want), "task {r}");
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                errors
            });
            let pin = TaskOptions::default().on(Placement::Unit(unit));
            for r in 0..300usize {
                let out = rt.empty(&[256], DType::F32);
                let k = add();
                match rt.submit_with(
                    &k,
                    &[ins[r % 8].read(), ins[(r * 3 + 1) % 8].read(), out.write()],
                    pin.clone(),
                ) {
                    Ok(_) => tx.send((r, out)).unwrap(),
                    Err(Error::NoCapableUnit { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            drop(tx);
            failures = reader.join().unwrap();
        });
        assert!(
            failures.is_empty(),
            "unit {unit}: {} failed, first: {}",
            failures.len(),
            failures[0]
        );
    }
}

#[test]
fn out_of_memory_names_the_pinned_bytes_and_tasks() {
    let backend = Arc::new(dsp::DspBackend::new(1, 2048));
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(backend)
        .build()
        .unwrap();
    // Three 1 KiB tensors in one task never fit 2 KiB.
    let a = rt.tensor(&[256], vec![1.0f32; 256]).unwrap();
    let b = rt.tensor(&[256], vec![2.0f32; 256]).unwrap();
    let c = rt.empty(&[256], DType::F32);
    let t = rt
        .submit_with(
            &add(),
            &[a.read(), b.read(), c.write()],
            TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp"))),
        )
        .unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(
        err.contains("out of memory")
            && err.contains("2048 of 2048 bytes are pinned")
            && err.contains(&format!("task {}", t.id())),
        "{err}"
    );
}

#[test]
fn cancelled_tasks_do_not_run_and_their_readers_fail() {
    let rt = cpu_runtime(1, Policy::WorkStealing);
    let gate = rt.tensor(&[1], vec![0.0f32]).unwrap();
    let x = rt.tensor(&[2], vec![1.0f32, -1.0]).unwrap();
    let y = rt.empty(&[2], DType::F32);
    let z = rt.empty(&[2], DType::F32);
    let slow = Kernel::custom("slow", &[Mode::ReadWrite], |_| {
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    });
    let running = rt.submit(&slow, &[gate.rw()]).unwrap();
    // Ordered after the slow task through `gate`, so not started yet.
    let dropped = rt
        .submit(&read_two(), &[gate.read(), x.read(), y.write()])
        .unwrap();
    let reader = rt.submit(&relu(), &[y.read(), z.write()]).unwrap();
    let writer_only = rt.submit(&relu(), &[x.read(), y.write()]).unwrap();
    assert!(rt.cancel(&dropped));
    std::thread::sleep(Duration::from_millis(5));
    assert!(!rt.cancel(&running), "a running task is not cancelled");
    rt.wait(&running).unwrap();
    assert!(
        matches!(rt.wait(&dropped), Err(Error::Cancelled { task, cancelled_task }) if task == dropped.id() && cancelled_task == dropped.id())
    );
    match rt.wait(&reader).unwrap_err() {
        Error::Cancelled { cancelled_task, .. } => assert_eq!(cancelled_task, dropped.id()),
        other => panic!("expected a cancellation, got {other}"),
    }
    rt.wait(&writer_only).unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![1.0, 0.0]);
    assert!(!rt.cancel(&writer_only), "a finished task is not cancelled");
}

#[test]
fn a_cancelled_job_drops_its_waiting_tasks_and_refuses_more() {
    let rt = cpu_runtime(1, Policy::Eager);
    let gate = rt.tensor(&[1], vec![0.0f32]).unwrap();
    let slow = Kernel::custom("slow", &[Mode::ReadWrite], |_| {
        std::thread::sleep(Duration::from_millis(30));
        Ok(())
    });
    let job = Job::new();
    let in_job = TaskOptions::default().job(&job);
    let first = rt.submit_with(&slow, &[gate.rw()], in_job.clone()).unwrap();
    let rest: Vec<_> = (0..10)
        .map(|_| rt.submit_with(&slow, &[gate.rw()], in_job.clone()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    let dropped = job.cancel();
    assert!(job.is_cancelled());
    assert!(dropped >= 9, "{dropped} dropped");
    rt.wait(&first).unwrap();
    let cancelled = rest
        .iter()
        .filter(|t| matches!(rt.wait(t), Err(Error::Cancelled { .. })))
        .count();
    assert_eq!(cancelled, dropped);
    let refused = rt.submit_with(&slow, &[gate.rw()], in_job).unwrap_err();
    assert!(matches!(refused, Error::Cancelled { .. }), "{refused}");
    // Outside the job, work goes on.
    let fresh = rt.tensor(&[1], vec![0.0f32]).unwrap();
    let after = rt.submit(&slow, &[fresh.rw()]).unwrap();
    rt.wait(&after).unwrap();
    // The job's tensor is poisoned by the dropped writers; the next
    // writer outside the job clears it.
    assert!(matches!(rt.read::<f32>(&gate), Err(Error::Poisoned { .. })));
    let clear = rt.submit(&relu(), &[fresh.read(), gate.write()]).unwrap();
    rt.wait(&clear).unwrap();
    assert_eq!(rt.read::<f32>(&gate).unwrap(), vec![0.0]);
}

#[test]
fn errors_name_tensors_and_arguments() {
    let rt = cpu_runtime(1, Policy::WorkStealing);
    let x = rt.tensor(&[2], vec![1.0f32, 2.0]).unwrap().named("weights");
    let err = rt.submit(&Kernel::Potrf, &[]).unwrap_err().to_string();
    assert!(err.contains("takes 1 tensor access,"), "{err}");
    let err = rt.submit(&add(), &[x.read()]).unwrap_err().to_string();
    assert!(err.contains("takes 3 tensor accesses"), "{err}");
    let err = rt
        .submit(&relu(), &[x.read(), x.write()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("`weights`"), "{err}");
    let err = rt.read::<f64>(&x).unwrap_err().to_string();
    assert!(err.contains("tensor") && err.contains("`weights`"), "{err}");
    let half = rt.zeros(&[2], DType::F16).unwrap().named("half");
    let out = rt.empty(&[2], DType::F32);
    let err = rt
        .submit(&add(), &[x.read(), half.read(), out.write()])
        .unwrap_err();
    assert!(
        err.to_string().contains("argument 1 `half` has dtype f16"),
        "{err}"
    );
    assert!(matches!(err, Error::DType { arg: 1, .. }));
    let err = rt
        .submit(&relu(), &[x.write(), out.write()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("argument 0 `weights` must be accessed as R"),
        "{err}"
    );
    let long = rt.empty(&[3], DType::F32).named("long");
    let err = rt
        .submit(&relu(), &[x.read(), long.write()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("(arguments 0 `weights`, 1 `long`)"), "{err}");
    // A user kernel that misuses an argument: the error says which.
    let y = rt.tensor(&[2], vec![0.0f32; 2]).unwrap().named("bias");
    let wrong = Kernel::custom("wrong", &[Mode::Read, Mode::ReadWrite], |args| {
        args[1].as_slice::<f64>()?;
        Ok(())
    });
    let t = rt.submit(&wrong, &[x.read(), y.rw()]).unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(
        err.contains("argument 1 `bias`: has dtype f32, used as f64"),
        "{err}"
    );
    let readonly = Kernel::custom("readonly", &[Mode::Read, Mode::Write], |args| {
        args[0].as_f32_mut()?;
        Ok(())
    });
    let t = rt.submit(&readonly, &[x.read(), y.write()]).unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(err.contains("argument 0 `weights`: is read-only"), "{err}");
    // Traces name tensors too.
    let profile = rt.profile();
    assert_eq!(
        profile.tensor_label(x.id()),
        format!("tensor {} `weights`", x.id())
    );
    let trace = profile.chrome_trace();
    assert!(trace.contains("`weights`"), "the trace names the tensor");
}

/// One CPU unit and the DSP of `examples/custom_unit`.
fn dsp_runtime(profiling: bool) -> Runtime {
    Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .profiling(profiling)
        .backend(Arc::new(dsp::DspBackend::new(1, 1 << 20)))
        .build()
        .unwrap()
}

/// A relu on the DSP, read back: one copy in, one copy out.
fn relu_there_and_back(rt: &Runtime) {
    let x = rt.tensor(&[4], vec![1.0f32; 4]).unwrap();
    let y = rt.empty(&[4], DType::F32);
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    rt.submit_with(&relu(), &[x.read(), y.write()], on_dsp)
        .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![1.0; 4]);
}

#[test]
fn profile_streams_are_bounded_and_cleared() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .profile_capacity(1000)
        .build()
        .unwrap();
    for _ in 0..5000 {
        rt.submit(&Kernel::Noop, &[]).unwrap();
    }
    rt.wait_all();
    let p = rt.profile();
    assert!(
        p.tasks.len() <= 1000 && p.tasks.len() >= 800,
        "{}",
        p.tasks.len()
    );
    assert_eq!(p.tasks.len() as u64 + p.dropped.tasks, 5000);
    rt.clear_profile();
    let p = rt.profile();
    assert!(p.tasks.is_empty() && p.dropped.tasks == 0);

    // Without profiling, no transfer is kept, but the counters count.
    let rt = dsp_runtime(false);
    relu_there_and_back(&rt);
    assert!(rt.transfers().is_empty());
    let stats = rt.memory_stats();
    assert_eq!(stats.iter().map(|n| n.transfers_in).sum::<u64>(), 2);
    assert_eq!(stats.iter().map(|n| n.bytes_in).sum::<u64>(), 32);
}

#[test]
fn transfers_are_part_of_the_profile_and_cleared_with_it() {
    let rt = dsp_runtime(true);
    relu_there_and_back(&rt);
    assert_eq!(rt.transfers().len(), 2);
    assert_eq!(rt.profile().transfers.len(), 2);
    rt.clear_profile();
    assert!(rt.transfers().is_empty() && rt.profile().transfers.is_empty());
    assert_eq!(
        rt.memory_stats()
            .iter()
            .map(|n| n.transfers_in)
            .sum::<u64>(),
        2
    );
}

/// The bounded fault suite: random graphs with injected errors, panics,
/// delays, explicit edges and cancellations from three submitting threads,
/// on every unit this machine has (GPU, FPGA, NPU, TPU, VPU included),
/// under each policy, with device memory capped at twice the largest
/// working set, against a sequential replay.
#[test]
fn random_graphs_with_faults_match_a_sequential_replay() {
    for (i, policy) in Policy::ALL.into_iter().enumerate() {
        let rt = Runtime::builder()
            .policy(policy)
            .device_memory_limit(faults::DEVICE_CAPACITY)
            .build()
            .unwrap();
        let mut cfg = faults::FaultConfig::new(0x5eed + i as u64, 3, 40_000);
        cfg.panic_rate = 0.002;
        let report = faults::run(&rt, &cfg);
        eprintln!("{policy:?}: {report}");
        let evictions: u64 = rt.memory_stats().iter().map(|n| n.evictions).sum();
        eprintln!("{policy:?}: {evictions} evictions");
        assert!(
            report.mismatches.is_empty(),
            "{policy:?}: {report}\n{}",
            report.mismatches[..report.mismatches.len().min(10)].join("\n")
        );
        assert_eq!(report.out_of_memory, 0, "{policy:?}");
        assert!(report.injected_errors > 0 && report.injected_panics > 0);
        assert!(report.failed >= report.injected_errors + report.injected_panics);
        // Every unit that has the built-in kernels took part.
        let probe = rt.tensor(&[1], vec![1.0f32]).unwrap();
        for (u, r) in rt.units().iter().zip(rt.report()) {
            let pinned = TaskOptions::default().on(Placement::Unit(u.id));
            let out = rt.empty(&[1], DType::F32);
            if rt
                .submit_with(&relu(), &[probe.read(), out.write()], pinned)
                .is_ok()
            {
                assert!(
                    r.tasks + r.failed > 0,
                    "{policy:?}: unit {} ({}) ran nothing",
                    u.id,
                    u.kind
                );
            }
        }
    }
}
