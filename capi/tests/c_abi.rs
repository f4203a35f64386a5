//! The C ABI through C: the committed header is the generated one, the C
//! example builds and matches its reference, and a create / submit / read /
//! destroy cycle leaks nothing under valgrind. Also its errors, called from
//! Rust as C would call them.

use std::ffi::{c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};

use xpu_c::runtime::{xpu_runtime_free, xpu_runtime_new, xpu_runtime_options_default};
use xpu_c::task::{xpu_submit, xpu_task_free, xpu_task_wait};
use xpu_c::tensor::{xpu_tensor_free, xpu_tensor_new, xpu_tensor_read};
use xpu_c::user_kernel::xpu_register_cpu_kernel;
use xpu_c::{xpu_last_error, XpuAccess, XpuBuffer, XpuRuntime, XpuRuntimeOptions, XpuStatus};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The folder cargo put this build's `libxpu_c.so` in: the test's own
/// `deps/` (a test build does not copy it up to `target/<profile>/`, where
/// a copy from an older `cargo build` may lie).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let deps = exe.parent().expect("tests run from target/<profile>/deps");
    assert!(
        deps.join("libxpu_c.so").exists(),
        "no libxpu_c.so beside the test in {}",
        deps.display()
    );
    deps.to_path_buf()
}

/// Compiles `examples/c/gemm_pipeline.c` against the library, as `name`.
fn build_example(name: &str) -> PathBuf {
    build(&repo().join("examples/c/gemm_pipeline.c"), name)
}

/// Compiles the C file `source` against the library, as `name`.
fn build(source: &Path, name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("xpu-{name}-{}", std::process::id()));
    let lib = library_dir();
    let status = Command::new("cc")
        .arg(source)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg(format!("-I{}", repo().join("include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lxpu_c", "-lm", "-o"])
        .arg(&out)
        .status()
        .expect("a C compiler `cc` is installed");
    assert!(status.success(), "{} does not compile", source.display());
    out
}

#[test]
fn the_committed_header_is_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/xpu.h"));
    let committed_path = repo().join("include/xpu.h");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated == committed,
        "include/xpu.h differs from the header cbindgen generates from capi/src; \
         update it with: cp {}/xpu.h {}",
        env!("OUT_DIR"),
        committed_path.display()
    );
}

#[test]
fn the_c_example_runs_and_matches_its_reference() {
    let exe = build_example("gemm-pipeline");
    let run = Command::new(&exe).output().expect("the example runs");
    let _ = std::fs::remove_file(&exe);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("unit 0: cpu on cpu"), "{stdout}");
    assert!(
        stdout.contains("unknown kernel: status 4: xpu_submit: kernel spec: field `name`: no built-in kernel is called `no_such_kernel`"),
        "{stdout}"
    );
    assert!(stdout.ends_with("ok\n"), "{stdout}");
}

#[test]
fn the_readmes_c_example_prints_its_product() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("### From C")
        .nth(1)
        .expect("the README has a section \"From C\"");
    let snippet = section
        .split("```c\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the section has a C example");
    let source = std::env::temp_dir().join(format!("xpu-readme-{}.c", std::process::id()));
    std::fs::write(&source, snippet).expect("temp dir is writable");
    let exe = build(&source, "readme");
    let run = Command::new(&exe)
        .output()
        .expect("the README's example runs");
    let _ = std::fs::remove_file(&exe);
    let _ = std::fs::remove_file(&source);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "4 2 8 6\n");
}

#[test]
fn a_create_submit_read_destroy_cycle_leaks_nothing_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind is required in CI (scripts/test.sh installs it)"
        );
        eprintln!("valgrind is not installed: leak check skipped");
        return;
    }
    let exe = build_example("gemm-pipeline-valgrind");
    let run = Command::new("valgrind")
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
            "--error-exitcode=99",
        ])
        .arg(&exe)
        .arg("--cpu-only")
        .output()
        .expect("valgrind runs");
    let _ = std::fs::remove_file(&exe);
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "valgrind reports errors or leaks:\n{report}"
    );
    assert!(report.contains("definitely lost: 0 bytes"), "{report}");
    assert!(report.contains("indirectly lost: 0 bytes"), "{report}");
}

fn last_error() -> String {
    // SAFETY: the library's NUL-terminated string, read on the failing thread.
    unsafe { CStr::from_ptr(xpu_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts that a call ended with `want` and a message containing `says`.
#[track_caller]
fn assert_fails(status: XpuStatus, want: XpuStatus, says: &str) {
    let message = last_error();
    assert_eq!(status, want, "{message}");
    assert!(message.contains(says), "{message}");
}

fn cpu_runtime() -> *mut XpuRuntime {
    let mut options = std::mem::MaybeUninit::<XpuRuntimeOptions>::uninit();
    let mut rt = null_mut();
    // SAFETY: valid out pointers.
    unsafe {
        assert_eq!(
            xpu_runtime_options_default(options.as_mut_ptr()),
            XpuStatus::Ok
        );
        let mut options = options.assume_init();
        options.device_discovery = false;
        options.cpu_units = 1;
        assert_eq!(xpu_runtime_new(&options, &mut rt), XpuStatus::Ok);
    }
    rt
}

#[test]
fn bad_input_gets_a_status_and_a_message_naming_it() {
    let rt = cpu_runtime();
    let mut t = null_mut();
    let shape = [2usize, 2];
    // SAFETY: every pointer is valid or deliberately NULL.
    unsafe {
        let data = [0u8; 12];
        let status = xpu_tensor_new(rt, 0, shape.as_ptr(), 2, data.as_ptr().cast(), 12, &mut t);
        let needs = "xpu_tensor_new: tensor of shape [2, 2] f32 needs 16 bytes, got 12";
        assert_fails(status, XpuStatus::Shape, needs);
        let status = xpu_tensor_new(rt, 9, shape.as_ptr(), 2, null(), 0, &mut t);
        assert_fails(status, XpuStatus::InvalidArgument, "9 is not an XpuDtype");
        let status = xpu_tensor_new(null(), 0, shape.as_ptr(), 2, null(), 0, &mut t);
        assert_fails(
            status,
            XpuStatus::InvalidArgument,
            "xpu_tensor_new: `rt` is NULL",
        );

        assert_eq!(
            xpu_tensor_new(rt, 0, shape.as_ptr(), 2, null(), 0, &mut t),
            XpuStatus::Ok
        );
        let mut out = [0f32; 3];
        let status = xpu_tensor_read(rt, t, out.as_mut_ptr().cast(), 12);
        assert_eq!(status, XpuStatus::Shape);
        let args = [XpuAccess { tensor: t, mode: 7 }];
        let status = xpu_submit(rt, c"relu".as_ptr(), args.as_ptr(), 1, null_mut());
        assert_fails(status, XpuStatus::InvalidArgument, "7 is not an XpuMode");
        let args = [XpuAccess { tensor: t, mode: 2 }];
        let status = xpu_submit(
            rt,
            c"{\"name\": \"gemm\", \"alpha\": \"x\"}".as_ptr(),
            args.as_ptr(),
            1,
            null_mut(),
        );
        assert_fails(status, XpuStatus::UnknownKernel, "`alpha`");
        let status = xpu_submit(rt, c"{not json".as_ptr(), args.as_ptr(), 1, null_mut());
        assert_fails(status, XpuStatus::UnknownKernel, "spec is not JSON");
        let status = xpu_submit(rt, c"relu".as_ptr(), args.as_ptr(), 1, null_mut());
        assert_fails(status, XpuStatus::Shape, "takes 2 tensor accesses, got 1");
        xpu_tensor_free(t);
        xpu_runtime_free(rt);
    }
}

unsafe extern "C" fn fail_with_3(_: *mut c_void, _: *const XpuBuffer, _: usize) -> c_int {
    3
}

#[test]
fn a_failing_c_kernel_fails_its_task_and_poisons_what_it_writes() {
    let rt = cpu_runtime();
    let mut t = null_mut();
    let mut task = null_mut();
    // SAFETY: valid pointers throughout.
    unsafe {
        let modes = [2u32];
        let status = xpu_register_cpu_kernel(
            rt,
            c"fails".as_ptr(),
            modes.as_ptr(),
            1,
            Some(fail_with_3),
            null_mut(),
        );
        assert_eq!(status, XpuStatus::Ok);
        let status = xpu_register_cpu_kernel(
            rt,
            c"fails".as_ptr(),
            modes.as_ptr(),
            1,
            Some(fail_with_3),
            null_mut(),
        );
        assert_fails(status, XpuStatus::UnknownKernel, "already registered");
        assert_eq!(
            xpu_tensor_new(rt, 0, [4usize].as_ptr(), 1, null(), 0, &mut t),
            XpuStatus::Ok
        );
        let args = [XpuAccess { tensor: t, mode: 2 }];
        assert_eq!(
            xpu_submit(rt, c"fails".as_ptr(), args.as_ptr(), 1, &mut task),
            XpuStatus::Ok
        );
        let status = xpu_task_wait(rt, task);
        assert_fails(status, XpuStatus::KernelFailed, "the C kernel returned 3");
        let mut out = [0f32; 4];
        assert_eq!(
            xpu_tensor_read(rt, t, out.as_mut_ptr().cast(), 16),
            XpuStatus::DependencyFailed
        );
        xpu_task_free(task);
        xpu_tensor_free(t);
        xpu_runtime_free(rt);
    }
}
