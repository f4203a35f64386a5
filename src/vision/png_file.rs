//! PNG files as 8-bit pixels, through the `png` crate.

use std::path::Path;

use crate::error::{Error, Result};
use crate::vision::Pixels;

/// Reads a PNG as 8-bit gray or RGB (alpha dropped, 16-bit and palette
/// images converted).
pub fn load_png(path: impl AsRef<Path>) -> Result<Pixels> {
    let path = path.as_ref();
    let bad = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(&e))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad(&"image too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let channels = info.color_type.samples();
    buf.truncate(h * w * channels);
    let (shape, data) = match channels {
        1 => (vec![h, w], buf),
        2 => (vec![h, w], buf.chunks(2).map(|p| p[0]).collect()),
        3 => (vec![h, w, 3], buf),
        _ => (
            vec![h, w, 3],
            buf.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        ),
    };
    Ok(Pixels { shape, data })
}

/// Writes `[H, W]` or `[H, W, 3]` u8 pixels as a PNG.
pub fn save_png(path: impl AsRef<Path>, pixels: &Pixels) -> Result<()> {
    let path = path.as_ref();
    let bad = |e: &dyn std::fmt::Display| Error::Io(format!("{}: {e}", path.display()));
    let colour = match pixels.shape.as_slice() {
        [_, _] => png::ColorType::Grayscale,
        [_, _, 3] => png::ColorType::Rgb,
        other => {
            return Err(Error::Config(format!(
                "a PNG is [H, W] or [H, W, 3] pixels, got {other:?}"
            )))
        }
    };
    let file = std::fs::File::create(path).map_err(|e| bad(&e))?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        pixels.shape[1] as u32,
        pixels.shape[0] as u32,
    );
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| bad(&e))?;
    writer.write_image_data(&pixels.data).map_err(|e| bad(&e))
}
