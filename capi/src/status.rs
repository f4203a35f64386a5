//! Status codes, the thread-local last error, and the guard every entry
//! point runs in: no panic unwinds into C.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a call came to. `XPU_STATUS_OK` is zero; on any other value
/// `xpu_last_error()` says what went wrong.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XpuStatus {
    /// Success.
    Ok = 0,
    /// A null pointer, a string that is not UTF-8, a bad enum value or size.
    InvalidArgument = 1,
    /// Shapes that do not fit the kernel, or data of the wrong length.
    Shape = 2,
    /// A dtype the kernel cannot use, or a read with the wrong one.
    Dtype = 3,
    /// A spec that names no kernel, or a bad parameter in it.
    UnknownKernel = 4,
    /// No unit can run the kernel on these arguments.
    NoCapableUnit = 5,
    /// The kernel failed while running.
    KernelFailed = 6,
    /// The task did not run: a task it depends on failed, or a tensor it
    /// reads is poisoned by one.
    DependencyFailed = 7,
    /// A memory node has no room.
    OutOfMemory = 8,
    /// The task was cancelled.
    Cancelled = 9,
    /// A device was lost, or the unit is down.
    DeviceLost = 10,
    /// The runtime was shut down.
    ShutDown = 11,
    /// A panic inside the library (a bug: please report it with the message).
    Panic = 12,
    /// Anything else: configuration, I/O, a device error.
    Other = 13,
}

impl From<&xpu::Error> for XpuStatus {
    fn from(e: &xpu::Error) -> XpuStatus {
        use xpu::Error as E;
        match e {
            E::ArgCount { .. } | E::Shape { .. } | E::DataLength { .. } | E::ByteLength { .. } => {
                XpuStatus::Shape
            }
            E::DType { .. } | E::ReadDType { .. } => XpuStatus::Dtype,
            E::AccessMode { .. }
            | E::ForeignTensor { .. }
            | E::AliasedWrite { .. }
            | E::Uninitialised { .. }
            | E::Argument { .. } => XpuStatus::InvalidArgument,
            E::KernelSpec { .. } => XpuStatus::UnknownKernel,
            E::NoCapableUnit { .. } | E::UnknownUnit(_) => XpuStatus::NoCapableUnit,
            E::KernelFailed { .. } => XpuStatus::KernelFailed,
            E::DependencyFailed { .. } | E::Poisoned { .. } => XpuStatus::DependencyFailed,
            E::OutOfMemory { .. } => XpuStatus::OutOfMemory,
            E::Cancelled { .. } => XpuStatus::Cancelled,
            E::DeviceLost { .. } | E::UnitDown { .. } => XpuStatus::DeviceLost,
            E::ShutDown => XpuStatus::ShutDown,
            _ => XpuStatus::Other,
        }
    }
}

/// A failed call: its status and message.
pub struct Failure {
    status: XpuStatus,
    message: String,
}

impl Failure {
    /// A failure of `status` saying `message`.
    pub fn new(status: XpuStatus, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// A bad argument from the caller.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(XpuStatus::InvalidArgument, message)
    }
}

impl From<xpu::Error> for Failure {
    fn from(e: xpu::Error) -> Failure {
        Failure::new(XpuStatus::from(&e), e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // An interior NUL would cut the message; show it instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Runs `f`, turning its error or panic into a status and the thread's
/// last error message.
pub fn guard<F>(what: &str, f: F) -> XpuStatus
where
    F: FnOnce() -> Result<(), Failure>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => XpuStatus::Ok,
        Ok(Err(failure)) => {
            set_last_error(&format!("{what}: {}", failure.message));
            failure.status
        }
        Err(panic) => {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            set_last_error(&format!("{what}: panicked: {reason}"));
            XpuStatus::Panic
        }
    }
}

/// The message of the last call on this thread that did not return
/// `XPU_STATUS_OK` ("" if none did). The string belongs to the library and
/// stays valid until the next failing call on the same thread.
#[no_mangle]
pub extern "C" fn xpu_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// `ptr` as a reference, or an error naming the argument.
///
/// # Safety
/// A non-null `ptr` must point to a live `T`.
pub unsafe fn reference<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    ptr.as_ref()
        .ok_or_else(|| Failure::invalid(format!("`{name}` is NULL")))
}

/// The C string at `ptr` as UTF-8, or an error naming the argument.
///
/// # Safety
/// A non-null `ptr` must point to a NUL-terminated string.
pub unsafe fn text<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("`{name}` is NULL")));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|e| Failure::invalid(format!("`{name}` is not UTF-8: {e}")))
}

/// `len` elements at `ptr` (which may be NULL when `len` is 0).
///
/// # Safety
/// A non-null `ptr` must point to `len` initialised elements.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "`{name}` is NULL but its length is {len}"
        )));
    }
    Ok(std::slice::from_raw_parts(ptr, len))
}

/// Stores `value` at `out` as a heap object the caller frees, if `out` is
/// not NULL.
///
/// # Safety
/// A non-null `out` must be writable.
pub unsafe fn hand_out<T>(out: *mut *mut T, value: T) {
    if !out.is_null() {
        *out = Box::into_raw(Box::new(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let status = guard("xpu_test", || panic!("boom"));
        assert_eq!(status, XpuStatus::Panic);
        // SAFETY: the library's own NUL-terminated string.
        let message = unsafe { CStr::from_ptr(xpu_last_error()) }
            .to_str()
            .unwrap();
        assert_eq!(message, "xpu_test: panicked: boom");
    }

    #[test]
    fn errors_keep_their_kind() {
        let status = guard("xpu_test", || {
            Err(xpu::Error::KernelSpec {
                field: "name".into(),
                what: "no".into(),
            }
            .into())
        });
        assert_eq!(status, XpuStatus::UnknownKernel);
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(xpu_last_error()) }
            .to_str()
            .unwrap();
        assert_eq!(message, "xpu_test: kernel spec: field `name`: no");
    }
}
