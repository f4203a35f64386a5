//! Submitting tasks, by kernel spec or by a typed struct, and task handles.

use std::ffi::c_char;

use crate::runtime::XpuRuntime;
use crate::status::{guard, hand_out, reference, slice, text, Failure, XpuStatus};
use crate::tensor::XpuTensor;
use crate::user_kernel::XpuMode;

/// A submitted task. Opaque; handed out by the submit functions, freed by
/// `xpu_task_free` (freeing it does not cancel the task).
pub struct XpuTask {
    task: xpu::Task,
}

/// A kernel resolved once from its spec, to submit many tasks with
/// `xpu_submit_kernel` without parsing the spec each time. Opaque; made by
/// `xpu_kernel_new`, freed by `xpu_kernel_free`.
pub struct XpuKernel {
    kernel: xpu::Kernel,
}

/// One argument of a task: a tensor and how the task accesses it.
#[repr(C)]
pub struct XpuAccess {
    pub tensor: *const XpuTensor,
    /// An `XpuMode`.
    pub mode: u32,
}

/// GEMM's parameters: C = alpha * op(A) op(B) + beta * C.
#[repr(C)]
pub struct XpuGemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f64,
    pub beta: f64,
}

/// GEMM without transposes, alpha 1, beta 0.
#[no_mangle]
pub extern "C" fn xpu_gemm_default() -> XpuGemm {
    XpuGemm {
        trans_a: false,
        trans_b: false,
        alpha: 1.0,
        beta: 0.0,
    }
}

fn accesses(args: &[XpuAccess]) -> Result<Vec<xpu::Access>, Failure> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            // SAFETY: the caller passes live tensors (see the callers' contracts).
            let t = unsafe { a.tensor.as_ref() }
                .ok_or_else(|| Failure::invalid(format!("`accesses[{i}].tensor` is NULL")))?;
            Ok(t.tensor.access(XpuMode::checked(a.mode)?))
        })
        .collect()
}

fn submit(
    rt: &XpuRuntime,
    kernel: &xpu::Kernel,
    args: &[xpu::Access],
    out: *mut *mut XpuTask,
) -> Result<(), Failure> {
    let task = rt.rt.submit(kernel, args)?;
    // SAFETY: the callers require `out` to be NULL or writable.
    unsafe { hand_out(out, XpuTask { task }) };
    Ok(())
}

/// The kernel `spec` names: a built-in kernel's JSON spec or name, or a
/// user kernel registered on `rt` (by name).
fn resolve(rt: &XpuRuntime, spec: &str) -> Result<xpu::Kernel, Failure> {
    let value = if spec.trim_start().starts_with('{') {
        serde_json::from_str(spec)
            .map_err(|e| Failure::new(XpuStatus::UnknownKernel, format!("spec is not JSON: {e}")))?
    } else {
        serde_json::json!({ "name": spec })
    };
    Ok(rt.rt.kernel(&value)?)
}

/// Resolves `spec` (as `xpu_submit` takes it) into a kernel handle in
/// `*out`, for submitting many tasks of it with `xpu_submit_kernel`.
///
/// # Safety
/// `rt` must be live; `spec` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_kernel_new(
    rt: *const XpuRuntime,
    spec: *const c_char,
    out: *mut *mut XpuKernel,
) -> XpuStatus {
    guard("xpu_kernel_new", || {
        let r = reference(rt, "rt")?;
        if out.is_null() {
            return Err(Failure::invalid("`out` is NULL"));
        }
        let kernel = resolve(r, text(spec, "spec")?)?;
        hand_out(out, XpuKernel { kernel });
        Ok(())
    })
}

/// Frees a kernel handle. NULL does nothing.
///
/// # Safety
/// `kernel` must be NULL or a kernel handle not yet freed.
#[no_mangle]
pub unsafe extern "C" fn xpu_kernel_free(kernel: *mut XpuKernel) {
    if !kernel.is_null() {
        guard("xpu_kernel_free", || {
            drop(Box::from_raw(kernel));
            Ok(())
        });
    }
}

/// Submits a task of `kernel` (from `xpu_kernel_new`) on `accesses[0..n]`:
/// `xpu_submit` without resolving a spec.
///
/// # Safety
/// As `xpu_submit`, with `kernel` a live kernel handle made on `rt`.
#[no_mangle]
pub unsafe extern "C" fn xpu_submit_kernel(
    rt: *const XpuRuntime,
    kernel: *const XpuKernel,
    accesses_: *const XpuAccess,
    n: usize,
    out: *mut *mut XpuTask,
) -> XpuStatus {
    guard("xpu_submit_kernel", || {
        let r = reference(rt, "rt")?;
        let k = reference(kernel, "kernel")?;
        submit(
            r,
            &k.kernel,
            &accesses(slice(accesses_, n, "accesses")?)?,
            out,
        )
    })
}

/// Submits a task: the kernel named by `spec` on `accesses[0..n]`.
/// Dependencies on earlier tasks that touch the same tensors are added
/// automatically. `spec` is a kernel's JSON spec (`{"name": "gemm",
/// "trans_b": true}`), or just its name (`"relu"`) for the defaults; a user
/// kernel registered on this runtime is named alone. With a non-null `out`
/// the caller gets the task, to wait for and free.
///
/// # Safety
/// `rt` must be live; `spec` a NUL-terminated string; `accesses` must point
/// to `n` accesses of live tensors; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_submit(
    rt: *const XpuRuntime,
    spec: *const c_char,
    accesses_: *const XpuAccess,
    n: usize,
    out: *mut *mut XpuTask,
) -> XpuStatus {
    guard("xpu_submit", || {
        let r = reference(rt, "rt")?;
        let spec = text(spec, "spec")?;
        let value = if spec.trim_start().starts_with('{') {
            serde_json::from_str(spec).map_err(|e| {
                Failure::new(XpuStatus::UnknownKernel, format!("spec is not JSON: {e}"))
            })?
        } else {
            serde_json::json!({ "name": spec })
        };
        let kernel = r.rt.kernel(&value)?;
        submit(
            r,
            &kernel,
            &accesses(slice(accesses_, n, "accesses")?)?,
            out,
        )
    })
}

/// Submits C = alpha * op(A) op(B) + beta * C (`params` NULL: the
/// defaults of `xpu_gemm_default`).
///
/// # Safety
/// `rt`, `a`, `b`, `c` must be live; `params` NULL or valid; `out` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn xpu_submit_gemm(
    rt: *const XpuRuntime,
    params: *const XpuGemm,
    a: *const XpuTensor,
    b: *const XpuTensor,
    c: *mut XpuTensor,
    out: *mut *mut XpuTask,
) -> XpuStatus {
    guard("xpu_submit_gemm", || {
        let r = reference(rt, "rt")?;
        let defaults = xpu_gemm_default();
        let p = params.as_ref().unwrap_or(&defaults);
        let mut kernel = xpu::Kernel::gemm().scaled(p.alpha, p.beta);
        if p.trans_a {
            kernel = kernel.transpose_a();
        }
        if p.trans_b {
            kernel = kernel.transpose_b();
        }
        let c = reference(c.cast_const(), "c")?;
        let mode = if p.beta != 0.0 {
            xpu::Mode::ReadWrite
        } else {
            xpu::Mode::Write
        };
        let args = [
            reference(a, "a")?.tensor.read(),
            reference(b, "b")?.tensor.read(),
            c.tensor.access(mode),
        ];
        submit(r, &kernel, &args, out)
    })
}

/// Waits for `task` and returns how it ended.
///
/// # Safety
/// `rt` and `task` must be live, the task submitted on `rt`.
#[no_mangle]
pub unsafe extern "C" fn xpu_task_wait(rt: *const XpuRuntime, task: *const XpuTask) -> XpuStatus {
    guard("xpu_task_wait", || {
        let r = reference(rt, "rt")?;
        let t = reference(task, "task")?;
        r.rt.wait(&t.task)?;
        Ok(())
    })
}

/// Frees a task handle (the task itself runs on). NULL does nothing.
///
/// # Safety
/// `task` must be NULL or a task handle not yet freed.
#[no_mangle]
pub unsafe extern "C" fn xpu_task_free(task: *mut XpuTask) {
    if !task.is_null() {
        guard("xpu_task_free", || {
            drop(Box::from_raw(task));
            Ok(())
        });
    }
}
