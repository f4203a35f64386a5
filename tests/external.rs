//! External tasks: tasks no unit runs, ended by whoever holds them. They
//! take their place in the graph like any task with their access, their
//! bytes are the tensor's wherever its valid copy is, and a failed or
//! abandoned one poisons what it writes instead of hanging the tasks
//! after it.

#[path = "../examples/custom_unit/dsp.rs"]
#[allow(dead_code)] // only the backend is used here, not its `fir` kernel
mod dsp;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use xpu::{DType, Error, Kernel, Mode, Placement, Runtime, TaskOptions, UnaryOp, UnitKind};

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn cpu_runtime() -> Runtime {
    Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .build()
        .unwrap()
}

/// A kernel that waits until the flag is set, then sets every element of
/// its one tensor to `v`; and the flag.
fn held_fill(v: f32) -> (Kernel, Arc<AtomicBool>) {
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let held = Kernel::custom("held_fill", &[Mode::Write], move |args| {
        while !gate.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        args[0].as_f32_mut()?.fill(v);
        Ok(())
    });
    (held, open)
}

/// Doubles every element.
fn double() -> Kernel {
    Kernel::custom("double", &[Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?.iter_mut().for_each(|v| *v *= 2.0);
        Ok(())
    })
}

#[test]
fn an_external_write_comes_before_the_tasks_that_read_it() {
    let rt = cpu_runtime();
    let x = rt.empty(&[4], DType::F32);
    let y = rt.empty(&[4], DType::F32);
    let arrival = rt.external(x.write()).unwrap();
    assert!(arrival.is_ready(), "nothing wrote x before");
    let relu = rt
        .submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(!relu.is_done(), "the relu ran before x arrived");
    arrival.write(&bytes(&[-1.0, 2.0, -3.0, 4.0])).unwrap();
    arrival.complete();
    rt.wait(&relu).unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);
}

#[test]
fn an_external_read_waits_for_the_writer_before_it_and_holds_back_the_one_after() {
    let rt = cpu_runtime();
    let t = rt.empty(&[4], DType::F32);
    let (held, open) = held_fill(1.0);
    rt.submit(&held, &[t.write()]).unwrap();
    let departure = rt.external(t.read()).unwrap();
    assert!(!departure.is_ready(), "ready before the writer ended");
    let later = rt.submit(&double(), &[t.rw()]).unwrap();
    open.store(true, Ordering::SeqCst);
    let sent = departure.read(floats).unwrap();
    assert_eq!(
        sent,
        vec![1.0; 4],
        "read before the writer, or after the next"
    );
    assert!(!later.is_done(), "a later writer ran before the read ended");
    departure.complete();
    rt.wait(&later).unwrap();
    assert_eq!(rt.read::<f32>(&t).unwrap(), vec![2.0; 4]);
}

#[test]
fn an_external_dropped_unended_poisons_what_it_writes_and_the_runtime_goes_on() {
    let rt = cpu_runtime();
    let x = rt.empty(&[4], DType::F32).named("x");
    let y = rt.empty(&[4], DType::F32);
    let arrival = rt.external(x.write()).unwrap();
    let id = arrival.id();
    let relu = rt
        .submit(&Kernel::Unary(UnaryOp::Relu), &[x.read(), y.write()])
        .unwrap();
    drop(arrival);
    let err = rt.wait(&relu).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "external task {id} failed: dropped before it was completed"
        )),
        "{err}"
    );
    assert!(matches!(rt.read::<f32>(&x), Err(Error::Poisoned { .. })));
    // A new writer clears the poison; the runtime keeps running.
    let fill = Kernel::custom("fill", &[Mode::Write], |args| {
        args[0].as_f32_mut()?.fill(3.0);
        Ok(())
    });
    rt.submit(&fill, &[x.write()]).unwrap();
    assert_eq!(rt.read::<f32>(&x).unwrap(), vec![3.0; 4]);
}

#[test]
fn an_external_failed_before_it_is_ready_fails_after_the_writer_before_it() {
    let rt = cpu_runtime();
    let t = rt.empty(&[4], DType::F32);
    let (held, open) = held_fill(1.0);
    rt.submit(&held, &[t.write()]).unwrap();
    let arrival = rt.external(t.write()).unwrap();
    arrival.fail("rank 1 stopped answering");
    // The writer before it ends after the failure was given: the tensor
    // must still end up poisoned by the external task, not cleared.
    open.store(true, Ordering::SeqCst);
    let err = rt.read::<f32>(&t).unwrap_err().to_string();
    assert!(err.contains("rank 1 stopped answering"), "{err}");
}

#[test]
fn an_external_refuses_what_does_not_fit_its_access() {
    let rt = cpu_runtime();
    let t = rt.tensor(&[4], vec![1.0f32; 4]).unwrap().named("t");
    let writer = rt.external(t.write()).unwrap();
    let err = writer.write(&[0u8; 12]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ByteLength {
                expected: 16,
                got: 12,
                ..
            }
        ),
        "{err}"
    );
    let err = writer.read(|b| b.len()).unwrap_err().to_string();
    assert!(err.contains("only writes"), "{err}");
    writer.write(&bytes(&[5.0; 4])).unwrap();
    writer.complete();
    let reader = rt.external(t.read()).unwrap();
    let err = reader.write(&bytes(&[0.0; 4])).unwrap_err().to_string();
    assert!(err.contains("only reads"), "{err}");
    assert_eq!(reader.read(floats).unwrap(), vec![5.0; 4]);
    reader.complete();
    let other = cpu_runtime();
    let foreign = other.empty(&[4], DType::F32);
    assert!(matches!(
        rt.external(foreign.write()),
        Err(Error::ForeignTensor { .. })
    ));
}

#[test]
fn an_external_sees_and_replaces_what_a_device_holds() {
    let rt = Runtime::builder()
        .cpu_units(1)
        .device_discovery(false)
        .backend(Arc::new(dsp::DspBackend::new(1, 1 << 20)))
        .build()
        .unwrap();
    let on_dsp = TaskOptions::default().on(Placement::Kind(UnitKind::Custom("dsp")));
    let x = rt.tensor(&[4], vec![-1.0f32, 2.0, -3.0, 4.0]).unwrap();
    let y = rt.empty(&[4], DType::F32);
    let relu = Kernel::Unary(UnaryOp::Relu);
    rt.submit_with(&relu, &[x.read(), y.write()], on_dsp.clone())
        .unwrap();
    // Only the DSP's copy of y is valid: the read brings it to the host.
    let departure = rt.external(y.read()).unwrap();
    assert_eq!(departure.read(floats).unwrap(), vec![0.0, 2.0, 0.0, 4.0]);
    departure.complete();
    // New bytes for x from outside: the DSP's copy of x is stale now.
    let arrival = rt.external(x.write()).unwrap();
    arrival.write(&bytes(&[7.0, -8.0, 9.0, -10.0])).unwrap();
    arrival.complete();
    rt.submit_with(&relu, &[x.read(), y.write()], on_dsp)
        .unwrap();
    assert_eq!(rt.read::<f32>(&y).unwrap(), vec![7.0, 0.0, 9.0, 0.0]);
}
