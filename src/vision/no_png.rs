//! Stand-in for `png_file.rs` in a build without the `png` feature: the
//! same functions, answering that PNG support is not compiled in.

use std::path::Path;

use crate::error::{Error, Result};
use crate::vision::Pixels;

const NOT_COMPILED: Error = Error::NotCompiled {
    what: "PNG support",
    feature: "png",
};

/// Reads a PNG: not compiled into this build.
pub fn load_png(_path: impl AsRef<Path>) -> Result<Pixels> {
    Err(NOT_COMPILED)
}

/// Writes a PNG: not compiled into this build.
pub fn save_png(_path: impl AsRef<Path>, _pixels: &Pixels) -> Result<()> {
    Err(NOT_COMPILED)
}
