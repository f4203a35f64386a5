//! Unified memory through a second memory node that really copies bytes:
//! the DSP backend of `examples/custom_unit`, registered from outside the crate.

#[path = "../examples/custom_unit/dsp.rs"]
mod dsp;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xpu::memory::size_class;
use xpu::{
    Arg, ArgMeta, Backend, DType, DeviceBuffer, Kernel, Placement, Runtime, TaskOptions, UnaryOp,
    UnitDesc, UnitKind, HOST,
};

const DSP: Placement = Placement::Kind(UnitKind::Custom("dsp"));
const CPU: Placement = Placement::Kind(UnitKind::Cpu);

fn runtime(capacity: usize) -> (Runtime, Arc<dsp::DspBackend>) {
    let backend = Arc::new(dsp::DspBackend::new(1, capacity));
    (runtime_with(backend.clone()), backend)
}

/// Two CPU units and `backend`'s, without the machine's devices: the
/// backend's memory is node 1.
fn runtime_with(backend: Arc<dyn Backend>) -> Runtime {
    Runtime::builder()
        .cpu_units(2)
        .device_discovery(false)
        .backend(backend)
        .build()
        .unwrap()
}

fn on(p: Placement) -> TaskOptions {
    TaskOptions::default().on(p)
}

/// Adds 1 to every element, in place.
fn increment() -> Kernel {
    Kernel::custom("increment", &[xpu::Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?.iter_mut().for_each(|v| *v += 1.0);
        Ok(())
    })
}

#[test]
fn transfers_happen_only_when_the_needed_copy_is_stale() {
    let (rt, _) = runtime(1 << 20);
    let dsp_node = rt
        .units()
        .iter()
        .find(|u| u.kind == UnitKind::Custom("dsp"))
        .unwrap()
        .node;
    let a = rt.tensor(&[256], vec![1.0f32; 256]).unwrap();
    let b = rt.zeros(&[256], DType::F32).unwrap();
    let relu = Kernel::Unary(UnaryOp::Relu);

    // Read on the DSP: one upload. Again: none (the copy is Shared there).
    rt.submit_with(&relu, &[a.read(), b.write()], on(DSP))
        .unwrap();
    rt.submit_with(&relu, &[a.read(), b.write()], on(DSP))
        .unwrap();
    // Read on the CPU: the host copy is still valid, nothing moves.
    rt.submit_with(&relu, &[a.read(), b.write()], on(CPU))
        .unwrap();
    // Write on the DSP: its copy is valid, nothing moves; the host copy goes stale.
    rt.submit_with(&increment(), &[a.rw()], on(DSP)).unwrap();
    rt.wait_all();
    // The CPU reads it: one download.
    rt.submit_with(&relu, &[a.read(), b.write()], on(CPU))
        .unwrap();
    assert_eq!(rt.read::<f32>(&b).unwrap(), vec![2.0; 256]);
    assert_eq!(rt.read::<f32>(&a).unwrap(), vec![2.0; 256]);

    let moved: Vec<(u64, usize, usize)> = rt
        .transfers()
        .iter()
        .map(|t| (t.tensor, t.from, t.to))
        .collect();
    // b is only ever written, and last on the CPU: it never moves.
    assert_eq!(
        moved,
        vec![(a.id(), HOST, dsp_node), (a.id(), dsp_node, HOST)],
        "transfers: {:?}",
        rt.transfers()
    );
    let stats = rt.memory_stats();
    assert_eq!(stats[dsp_node].bytes_in, 1024);
    assert_eq!(stats[dsp_node].bytes_out, 1024);
    assert_eq!(stats[HOST].bytes_in, 1024);
}

#[test]
fn a_write_only_access_fetches_nothing_and_invalidates_other_copies() {
    let (rt, _) = runtime(1 << 20);
    let x = rt.tensor(&[64], vec![3.0f32; 64]).unwrap();
    let y = rt.tensor(&[64], vec![9.0f32; 64]).unwrap();
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on(DSP),
    )
    .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![3.0; 64]);
    let into_dsp: Vec<u64> = rt
        .transfers()
        .iter()
        .filter(|t| t.to != HOST)
        .map(|t| t.tensor)
        .collect();
    assert_eq!(
        into_dsp,
        vec![x.id()],
        "y is written, not read: it must not be uploaded"
    );
}

#[test]
fn eviction_under_a_tiny_capacity_loses_nothing() {
    let tensor_bytes = 4096 * 4;
    // Room for three tensors on the DSP; ten are modified there in turn.
    let (rt, _) = runtime(3 * size_class(tensor_bytes));
    let tensors: Vec<_> = (0..10)
        .map(|i| rt.tensor(&[4096], vec![i as f32; 4096]).unwrap())
        .collect();
    for round in 0..3 {
        for t in &tensors {
            rt.submit_with(&increment(), &[t.rw()], on(DSP)).unwrap();
        }
        // Interleave CPU work on half of them so copies move both ways.
        if round == 1 {
            for t in tensors.iter().step_by(2) {
                rt.submit_with(&increment(), &[t.rw()], on(CPU)).unwrap();
            }
        }
    }
    rt.wait_all();
    for (i, t) in tensors.iter().enumerate() {
        let extra = if i % 2 == 0 { 4.0 } else { 3.0 };
        assert_eq!(
            rt.read::<f32>(t).unwrap(),
            vec![i as f32 + extra; 4096],
            "tensor {i}"
        );
    }
    let dsp = &rt.memory_stats()[1];
    assert!(dsp.evictions > 0, "expected evictions: {dsp:?}");
    assert!(
        dsp.write_backs > 0,
        "modified copies must be written back: {dsp:?}"
    );
    assert!(dsp.peak <= dsp.capacity, "{dsp:?}");
}

#[test]
fn a_tensor_larger_than_the_device_is_a_clear_error() {
    let (rt, _) = runtime(1024);
    let big = rt.tensor(&[4096], vec![1.0f32; 4096]).unwrap();
    let out = rt.zeros(&[4096], DType::F32).unwrap();
    let task = rt
        .submit_with(
            &Kernel::Unary(UnaryOp::Exp),
            &[big.read(), out.write()],
            on(DSP),
        )
        .unwrap();
    let err = rt.wait(&task).unwrap_err().to_string();
    assert!(err.contains("out of memory"), "{err}");
    // The runtime still works, and the input is intact.
    assert_eq!(rt.read::<f32>(&big).unwrap(), vec![1.0; 4096]);
}

#[test]
fn freed_buffers_are_reused_by_size_class() {
    let (rt, _) = runtime(1 << 20);
    let run_once = || {
        let x = rt.tensor(&[1000], vec![1.0f32; 1000]).unwrap();
        let y = rt.zeros(&[1000], DType::F32).unwrap();
        rt.submit_with(
            &Kernel::Unary(UnaryOp::Relu),
            &[x.read(), y.write()],
            on(DSP),
        )
        .unwrap();
        rt.read::<f32>(&y).unwrap();
    };
    run_once();
    let after_first = rt.memory_stats()[1].allocated;
    assert_eq!(after_first, 2 * size_class(4000));
    for _ in 0..5 {
        run_once();
    }
    assert_eq!(
        rt.memory_stats()[1].allocated,
        after_first,
        "buffers must be reused, not reallocated"
    );
}

#[test]
fn the_static_pool_is_reserved_at_start_and_used_first() {
    let backend = Arc::new(dsp::DspBackend::new(1, 1 << 20));
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(backend)
        .static_pool(1, 4096, 4)
        .build()
        .unwrap();
    assert_eq!(rt.memory_stats()[1].allocated, 4 * 4096);
    let x = rt.tensor(&[1024], vec![2.0f32; 1024]).unwrap();
    let y = rt.zeros(&[1024], DType::F32).unwrap();
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on(DSP),
    )
    .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![2.0; 1024]);
    assert_eq!(
        rt.memory_stats()[1].allocated,
        4 * 4096,
        "tensors of the pooled class come from the pool"
    );
    let too_big = Runtime::builder()
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, 8192)))
        .static_pool(1, 4096, 4)
        .build();
    assert!(too_big.err().unwrap().to_string().contains("static pool"));
}

#[test]
fn host_accounting_tracks_allocation_and_peak() {
    let rt = Runtime::builder().cpu_units(1).build().unwrap();
    let before = rt.memory_stats()[HOST].allocated;
    let t = rt.zeros(&[1 << 20], DType::F32).unwrap();
    assert_eq!(rt.memory_stats()[HOST].allocated, before + (4 << 20));
    drop(t);
    let stats = &rt.memory_stats()[HOST];
    assert_eq!(stats.allocated, before);
    assert!(stats.peak >= before + (4 << 20));
    let capped = Runtime::builder()
        .cpu_units(1)
        .host_capacity(1000)
        .build()
        .unwrap();
    let err = capped.zeros(&[1000], DType::F32).unwrap_err().to_string();
    assert!(err.contains("out of memory"), "{err}");
}

#[test]
fn a_kernel_only_the_custom_unit_has_runs_there_with_dependencies() {
    let (rt, backend) = runtime(1 << 20);
    let x = rt
        .tensor(&[8], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        .unwrap();
    let h = rt.tensor(&[2], vec![1.0f32, -1.0]).unwrap();
    let y = rt.zeros(&[8], DType::F32).unwrap();
    let z = rt.zeros(&[8], DType::F32).unwrap();
    rt.submit(&dsp::fir().unwrap(), &[x.read(), h.read(), y.write()])
        .unwrap();
    rt.submit(
        &Kernel::Binary(xpu::BinaryOp::Add),
        &[y.read(), x.read(), z.write()],
    )
    .unwrap();
    // y = first difference of x: [1, 1, 1, ...]; z = y + x.
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![1.0; 8]);
    assert_eq!(
        rt.read::<f32>(&z).unwrap(),
        vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    );
    assert!(backend.launches() >= 1);
    let pinned = rt.submit_with(
        &dsp::fir().unwrap(),
        &[x.read(), h.read(), y.write()],
        on(CPU),
    );
    assert!(pinned
        .unwrap_err()
        .to_string()
        .contains("no unit can run kernel `fir` on a cpu unit"));
}

fn floats(view: &xpu::HostView) -> Vec<f32> {
    bytemuck::cast_slice(view.bytes()).to_vec()
}

#[test]
fn a_host_view_shares_the_host_copy_and_never_changes_under_its_holder() {
    let (rt, _) = runtime(1 << 20);
    let host_before = rt.memory_stats()[HOST].allocated;
    let t = rt.tensor(&[4], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let first = rt.view(&t).unwrap();
    let second = rt.view(&t).unwrap();
    assert_eq!(
        first.bytes().as_ptr(),
        second.bytes().as_ptr(),
        "two views of an unwritten tensor are the same memory"
    );
    assert_eq!(rt.memory_stats()[HOST].bytes_in, 0, "a view copies nothing");

    // A write on the host goes to a fresh buffer; the views keep theirs.
    rt.submit_with(&increment(), &[t.rw()], on(CPU)).unwrap();
    assert_eq!(rt.read::<f32>(&t).unwrap(), vec![2.0, 3.0, 4.0, 5.0]);
    assert_eq!(floats(&first), vec![1.0, 2.0, 3.0, 4.0]);

    // A copy back from a device does too.
    let after_cpu = rt.view(&t).unwrap();
    rt.submit_with(&increment(), &[t.rw()], on(DSP)).unwrap();
    let after_dsp = rt.view(&t).unwrap();
    assert_eq!(floats(&after_cpu), vec![2.0, 3.0, 4.0, 5.0]);
    assert_eq!(floats(&after_dsp), vec![3.0, 4.0, 5.0, 6.0]);
    assert_eq!(floats(&second), vec![1.0, 2.0, 3.0, 4.0]);

    // Buffers given to views leave the node's accounting: only the
    // tensor's own host copy is charged.
    assert_eq!(rt.memory_stats()[HOST].allocated, host_before + t.nbytes());
}

#[test]
fn a_view_of_a_poisoned_or_unwritten_tensor_is_an_error() {
    let (rt, _) = runtime(1 << 20);
    let never = rt.empty(&[4], DType::F32);
    assert!(matches!(
        rt.view(&never),
        Err(xpu::Error::Uninitialised { .. })
    ));
    let fails = Kernel::custom("fails", &[xpu::Mode::Write], |_| {
        Err(xpu::Error::Config("on purpose".into()))
    });
    let t = rt.zeros(&[4], DType::F32).unwrap();
    rt.submit(&fails, &[t.write()]).unwrap();
    let err = rt.view(&t).unwrap_err();
    assert!(matches!(err, xpu::Error::Poisoned { .. }), "{err}");
}

/// A kernel on one tensor that returns once `open` is set, and sets
/// `started` when it runs.
fn held(started: &'static AtomicBool, open: &'static AtomicBool) -> Kernel {
    Kernel::custom("held", &[xpu::Mode::ReadWrite], move |_| {
        started.store(true, Ordering::SeqCst);
        while !open.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        Ok(())
    })
}

#[test]
fn dmda_copies_the_inputs_of_a_task_queued_behind_a_running_one_before_it_starts() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    static OPEN: AtomicBool = AtomicBool::new(false);
    let (rt, _) = runtime(1 << 20);
    assert_eq!(rt.policy(), xpu::Policy::Dmda, "dmda is the default");
    let dsp = rt.first_unit(UnitKind::Custom("dsp")).unwrap();
    let dsp_node = rt.units()[dsp].node;
    let gate = rt.zeros(&[1], DType::F32).unwrap();
    let x = rt.tensor(&[1000], vec![-1.0f32; 1000]).unwrap();
    let y = rt.zeros(&[1000], DType::F32).unwrap();
    rt.submit_with(&held(&STARTED, &OPEN), &[gate.rw()], on(DSP))
        .unwrap();
    while !STARTED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    rt.submit_with(
        &Kernel::Unary(UnaryOp::Relu),
        &[x.read(), y.write()],
        on(DSP),
    )
    .unwrap();
    // The DSP is busy: x moves to it while the held task runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let copied = || {
        rt.transfers()
            .iter()
            .any(|t| t.tensor == x.id() && t.to == dsp_node)
    };
    while !copied() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before_start = copied();
    OPEN.store(true, Ordering::SeqCst);
    assert!(
        before_start,
        "x was not copied while the DSP was busy: {:?}",
        rt.transfers()
    );
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0; 1000]);
    // Its task found it there: x crossed once.
    let copies = rt.transfers().iter().filter(|t| t.tensor == x.id()).count();
    assert_eq!(copies, 1, "{:?}", rt.transfers());
}

/// The DSP, with allocations that wait while a gate is closed and are
/// counted: a test can hold one task inside an allocation while another
/// comes for the same replica.
struct GatedDsp {
    dsp: dsp::DspBackend,
    closed: AtomicBool,
    allocations: AtomicUsize,
}

impl Backend for GatedDsp {
    fn name(&self) -> &str {
        self.dsp.name()
    }

    fn units(&self) -> Vec<UnitDesc> {
        self.dsp.units()
    }

    fn alloc(&self, memory: usize, bytes: usize) -> xpu::Result<DeviceBuffer> {
        self.allocations.fetch_add(1, Ordering::SeqCst);
        while self.closed.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        self.dsp.alloc(memory, bytes)
    }

    fn view(
        &self,
        allocation: &Arc<DeviceBuffer>,
        offset: usize,
        bytes: usize,
    ) -> Option<xpu::Result<DeviceBuffer>> {
        self.dsp.view(allocation, offset, bytes)
    }

    fn upload(&self, dst: &DeviceBuffer, src: &[u8]) -> xpu::Result<()> {
        self.dsp.upload(dst, src)
    }

    fn download(&self, src: &DeviceBuffer, dst: &mut [u8]) -> xpu::Result<()> {
        self.dsp.download(src, dst)
    }

    fn supports(&self, unit: usize, kernel: &Kernel, args: &[ArgMeta<'_>]) -> bool {
        self.dsp.supports(unit, kernel, args)
    }

    fn launch(&self, unit: usize, kernel: &Kernel, args: &mut [Arg<'_>]) -> xpu::Result<()> {
        self.dsp.launch(unit, kernel, args)
    }
}

#[test]
fn a_replica_is_allocated_once_when_a_prefetch_and_its_task_reach_it_together() {
    static STARTED: AtomicBool = AtomicBool::new(false);
    static OPEN: AtomicBool = AtomicBool::new(false);
    let gated = Arc::new(GatedDsp {
        dsp: dsp::DspBackend::new(1, 1 << 20),
        closed: AtomicBool::new(false),
        allocations: AtomicUsize::new(0),
    });
    let rt = runtime_with(gated.clone());
    let relu = Kernel::Unary(UnaryOp::Relu);
    // The gate tensor and the output get their DSP memory first.
    let gate = rt.zeros(&[1], DType::F32).unwrap();
    let y = rt.zeros(&[1000], DType::F32).unwrap();
    rt.submit_with(&increment(), &[gate.rw()], on(DSP)).unwrap();
    rt.submit_with(&increment(), &[y.rw()], on(DSP)).unwrap();
    rt.wait_all();
    let x = rt.tensor(&[1000], vec![-1.0f32; 1000]).unwrap();
    let held_task = rt
        .submit_with(&held(&STARTED, &OPEN), &[gate.rw()], on(DSP))
        .unwrap();
    while !STARTED.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    // Queued behind the held task, the ReLU's input starts moving: its
    // allocation waits at the closed gate.
    let before = gated.allocations.load(Ordering::SeqCst);
    gated.closed.store(true, Ordering::SeqCst);
    rt.submit_with(&relu, &[x.read(), y.write()], on(DSP))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while gated.allocations.load(Ordering::SeqCst) == before && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(gated.allocations.load(Ordering::SeqCst), before + 1);
    // The ReLU starts and wants x while the prefetch still allocates it.
    OPEN.store(true, Ordering::SeqCst);
    rt.wait(&held_task).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    gated.closed.store(false, Ordering::SeqCst);
    rt.wait_all();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0; 1000]);
    assert_eq!(
        gated.allocations.load(Ordering::SeqCst),
        before + 1,
        "x was allocated on the DSP more than once"
    );
}
