//! The half-precision variant of a tensor shader. Each tensor shader names
//! its element type in memory with one alias line; the variant swaps it
//! for `f16` and enables the extension. Shared with `build.rs`, which
//! validates both variants.

/// The line that declares a tensor shader's element type.
pub const F32_ELEMENTS: &str = "alias T = f32;";

/// `source` with f16 elements, or `None` for a shader without the alias
/// (one that only runs in f32).
pub fn with_f16_elements(source: &str) -> Option<String> {
    source.contains(F32_ELEMENTS).then(|| {
        format!(
            "enable f16;\n{}",
            source.replacen(F32_ELEMENTS, "alias T = f16;", 1)
        )
    })
}
