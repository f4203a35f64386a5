//! User WGSL checked with naga (the compiler inside wgpu) before any
//! device sees it: parse errors and validation errors come back with the
//! source location, and the entry point must exist as a compute shader.

use crate::error::{Error, Result};

/// Checks a user kernel's WGSL: it parses, validates, and has a compute
/// entry point named `entry`. `kernel` names it in the error.
///
/// ```
/// use xpu::backend::gpu::validate_wgsl;
/// let ok = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
///           @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) i: vec3<u32>) { x[i.x] = 1.0; }";
/// assert!(validate_wgsl("ones", ok, "main").is_ok());
/// let err = validate_wgsl("ones", ok, "start").unwrap_err();
/// assert!(err.to_string().contains("no compute entry point `start`"));
/// let err = validate_wgsl("ones", "fn main( {", "main").unwrap_err();
/// assert!(err.to_string().contains("WGSL"));
/// ```
pub fn validate_wgsl(kernel: &str, source: &str, entry: &str) -> Result<()> {
    let fail = |what: String| {
        Err(Error::KernelSpec {
            field: "wgsl".into(),
            what: format!("user kernel `{kernel}`: {what}"),
        })
    };
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => {
            return fail(format!(
                "WGSL does not parse:\n{}",
                e.emit_to_string(source)
            ))
        }
    };
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    if let Err(e) = validator.validate(&module) {
        return fail(format!(
            "WGSL does not validate:\n{}",
            e.emit_to_string(source)
        ));
    }
    let has_entry = module
        .entry_points
        .iter()
        .any(|ep| ep.name == entry && ep.stage == naga::ShaderStage::Compute);
    if !has_entry {
        return fail(format!("the WGSL has no compute entry point `{entry}`"));
    }
    Ok(())
}
