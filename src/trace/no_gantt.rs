//! Stand-in for `gantt.rs` in a build without the `svg` feature.

use crate::error::{Error, Result};
use crate::trace::Profile;

impl Profile {
    /// The Gantt chart as an SVG document: not compiled into this build.
    pub fn gantt_svg(&self) -> Result<String> {
        Err(Error::NotCompiled {
            what: "Gantt chart drawing",
            feature: "svg",
        })
    }
}
