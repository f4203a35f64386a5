//! Failures: invalid submissions are rejected at `submit`; a failing kernel
//! fails its task, its dependents and the tensors it writes, and the runtime
//! keeps working.

use xpu::{DType, Error, Kernel, Mode, Placement, Runtime, TaskOptions, UnaryOp};

fn failing(message: &'static str) -> Kernel {
    Kernel::custom("failing", &[Mode::ReadWrite], move |_| {
        Err(Error::Device {
            backend: "cpu".into(),
            message: message.into(),
        })
    })
}

fn relu() -> Kernel {
    Kernel::Unary(UnaryOp::Relu)
}

#[test]
fn a_failed_kernel_fails_its_task_dependents_and_written_tensors() {
    let rt = Runtime::builder().build().unwrap();
    let a = rt.tensor(&[4], vec![1.0f32; 4]).unwrap();
    let b = rt.zeros(&[4], DType::F32).unwrap();
    let c = rt.zeros(&[4], DType::F32).unwrap();
    let bad = rt.submit(&failing("sensor unplugged"), &[a.rw()]).unwrap();
    let dependent = rt.submit(&relu(), &[a.read(), b.write()]).unwrap();
    let transitive = rt.submit(&relu(), &[b.read(), c.write()]).unwrap();

    let err = rt.wait(&bad).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sensor unplugged") && text.contains("`failing`"),
        "{text}"
    );

    for t in [&dependent, &transitive] {
        match rt.wait(t).unwrap_err() {
            Error::DependencyFailed { failed_task, .. } => assert_eq!(failed_task, bad.id()),
            other => panic!("expected a dependency failure, got {other}"),
        }
    }
    for t in [&a, &b, &c] {
        match rt.read::<f32>(t).unwrap_err() {
            Error::Poisoned { failed_task, .. } => assert_eq!(failed_task, bad.id()),
            other => panic!("expected a poisoned tensor, got {other}"),
        }
    }
    // Still usable: new work runs, and a successful write clears the poison.
    let fresh = rt.tensor(&[4], vec![-2.0f32, 2.0, -2.0, 2.0]).unwrap();
    rt.submit(&relu(), &[fresh.read(), c.write()]).unwrap();
    assert_eq!(rt.read::<f32>(&c).unwrap(), vec![0.0, 2.0, 0.0, 2.0]);
}

#[test]
fn a_tile_that_is_not_positive_definite_fails_with_the_reason() {
    let rt = Runtime::builder().build().unwrap();
    let a = rt.tensor(&[2, 2], vec![1.0f64, 2.0, 2.0, 1.0]).unwrap();
    let t = rt.submit(&Kernel::Potrf, &[a.rw()]).unwrap();
    let err = rt.wait(&t).unwrap_err().to_string();
    assert!(
        err.contains("potrf") && err.contains("not positive definite"),
        "{err}"
    );
}

#[test]
fn invalid_submissions_are_rejected_with_what_is_wrong() {
    let rt = Runtime::builder().build().unwrap();
    let m23 = rt.zeros(&[2, 3], DType::F32).unwrap();
    let m45 = rt.zeros(&[4, 5], DType::F32).unwrap();
    let m25 = rt.zeros(&[2, 5], DType::F32).unwrap();
    let m35 = rt.zeros(&[3, 5], DType::F32).unwrap();
    let f64s = rt.zeros(&[3, 5], DType::F64).unwrap();
    let u8s = rt.zeros(&[4], DType::U8).unwrap();
    let gemm = Kernel::gemm();

    let cases: Vec<(Result<xpu::Task, Error>, &str)> = vec![
        (
            rt.submit(&gemm, &[m23.read(), m45.read(), m25.write()]),
            "inner dimensions differ",
        ),
        (
            rt.submit(&gemm, &[m23.read(), m35.read(), m45.write()]),
            "C must be 2x5, got [4, 5]",
        ),
        (
            rt.submit(&gemm, &[m23.read(), f64s.read(), m25.write()]),
            "dtype f64",
        ),
        (
            rt.submit(&gemm, &[m23.read(), m35.read()]),
            "takes 3 tensor accesses, got 2",
        ),
        (
            rt.submit(&gemm, &[m23.read(), m35.read(), m25.read()]),
            "must be accessed as W, got R",
        ),
        (rt.submit(&relu(), &[u8s.read(), u8s.write()]), "aliasing"),
        (rt.submit(&relu(), &[u8s.read(), m25.write()]), "dtype u8"),
        (
            rt.submit(
                &Kernel::Reduce {
                    op: xpu::ReduceOp::Sum,
                    axis: 2,
                },
                &[m23.read(), m25.write()],
            ),
            "axis 2 out of range",
        ),
        (
            rt.submit(&relu(), &[m23.read(), m25.write()]),
            "argument 0 has shape [2, 3] but argument 1 has shape [2, 5]",
        ),
    ];
    for (i, (result, needle)) in cases.into_iter().enumerate() {
        let err = result.expect_err("must be rejected").to_string();
        assert!(
            err.contains(needle),
            "case {i}: `{err}` should mention `{needle}`"
        );
    }
    let m23b = rt.zeros(&[2, 3], DType::F32).unwrap();
    let err = rt
        .submit_with(
            &relu(),
            &[m23.read(), m23b.write()],
            TaskOptions::default().on(Placement::Unit(99)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnknownUnit(_)), "{err}");
    // Nothing was run and the runtime still works.
    rt.submit(&gemm, &[m23.read(), m35.read(), m25.write()])
        .unwrap();
    rt.wait_all();
}

#[test]
fn tensors_of_another_runtime_and_bad_reads_are_rejected() {
    let rt1 = Runtime::builder().cpu_units(1).build().unwrap();
    let rt2 = Runtime::builder().cpu_units(1).build().unwrap();
    let foreign = rt2.zeros(&[4], DType::F32).unwrap();
    let mine = rt1.zeros(&[4], DType::F32).unwrap();
    let err = rt1
        .submit(&relu(), &[foreign.read(), mine.write()])
        .unwrap_err();
    assert!(matches!(err, Error::ForeignTensor { .. }), "{err}");
    assert!(matches!(
        rt1.read::<f32>(&foreign),
        Err(Error::ForeignTensor { .. })
    ));
    assert!(matches!(
        rt1.read::<f64>(&mine),
        Err(Error::ReadDType { .. })
    ));
    let never_written = rt1.empty(&[4], DType::F32);
    let err = rt1.read::<f32>(&never_written).unwrap_err().to_string();
    assert!(err.contains("before it was ever written"), "{err}");
    let err = rt1
        .tensor(&[2, 2], vec![1.0f32; 3])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs 4 elements, got 3"), "{err}");
}

#[test]
fn shutdown_drains_the_queue_and_refuses_new_work() {
    let rt = Runtime::builder().build().unwrap();
    let x = rt.zeros(&[1], DType::F32).unwrap();
    let add_one = Kernel::custom("add_one", &[Mode::ReadWrite], |args| {
        args[0].as_f32_mut()?[0] += 1.0;
        Ok(())
    });
    for _ in 0..1000 {
        rt.submit(&add_one, &[x.rw()]).unwrap();
    }
    rt.shutdown();
    let err = rt.submit(&Kernel::Noop, &[]).unwrap_err();
    assert!(matches!(err, Error::ShutDown));
    assert_eq!(rt.read::<f32>(&x).unwrap(), vec![1000.0]);
}
