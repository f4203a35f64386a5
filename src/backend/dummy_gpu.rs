//! Stands in for the wgpu backend when the crate is built without the
//! `wgpu` feature: discovery says so, and nothing else changes.

use std::sync::Arc;

use crate::backend::Backend;

/// Always answers that the feature is off.
pub fn discover() -> std::result::Result<Arc<dyn Backend>, String> {
    Err("not compiled with the `wgpu` feature".into())
}
