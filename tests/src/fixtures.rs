//! Real image files made on the spot: JPEG (optionally with an EXIF orientation), PNG, BMP, and
//! a PNG header that promises a decompression bomb; and zips of them.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat, RgbImage};

/// A `width × height` picture with a gradient and a bright square in the top-left quarter, so
/// orientation mistakes are visible in screenshots.
pub fn picture(width: u32, height: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        if x < width / 4 && y < height / 4 {
            image::Rgb([255, 240, 0])
        } else {
            image::Rgb([(x * 255 / width.max(1)) as u8, (y * 255 / height.max(1)) as u8, seed])
        }
    })
}

/// JPEG bytes; `orientation` (1–8) is written as EXIF when not 1.
pub fn jpeg(width: u32, height: u32, orientation: u8, seed: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    if orientation != 1 {
        let _ = encoder.set_exif_metadata(exif_orientation(orientation));
    }
    let image = picture(width, height, seed);
    let _ = encoder.write_image(image.as_raw(), width, height, ExtendedColorType::Rgb8);
    out
}

/// A JPEG whose pixels encode `number` (a black/white bar code along the top), so every number
/// gives different bytes — for benchmarks that need thousands of distinct images.
pub fn numbered_jpeg(width: u32, height: u32, number: u32) -> Vec<u8> {
    let mut image = picture(width, height, (number % 256) as u8);
    let cell = (width / 32).max(1);
    for bit in 0..32u32 {
        let on = (number >> bit) & 1 == 1;
        for x in bit * cell..((bit + 1) * cell).min(width) {
            for y in 0..(height / 10).max(1) {
                image.put_pixel(
                    x,
                    y,
                    if on {
                        image::Rgb([255, 255, 255])
                    } else {
                        image::Rgb([0, 0, 0])
                    },
                );
            }
        }
    }
    let mut out = Vec::new();
    let _ =
        JpegEncoder::new_with_quality(&mut out, 90).write_image(image.as_raw(), width, height, ExtendedColorType::Rgb8);
    out
}

/// PNG bytes.
pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    encode(width, height, seed, ImageFormat::Png)
}

/// BMP bytes.
pub fn bmp(width: u32, height: u32, seed: u8) -> Vec<u8> {
    encode(width, height, seed, ImageFormat::Bmp)
}

/// A PNG whose header claims `width × height` but that carries almost no data: decoding it
/// naively would allocate `width × height × 3` bytes.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(1, 1, 0);
    // IHDR starts at byte 16: width and height, big-endian; then fix the chunk's CRC.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn encode(width: u32, height: u32, seed: u8, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let _ = picture(width, height, seed).write_to(&mut out, format);
    out.into_inner()
}

/// A big-endian TIFF block with one IFD entry: Orientation (0x0112).
fn exif_orientation(orientation: u8) -> Vec<u8> {
    vec![
        b'M',
        b'M',
        0,
        42,
        0,
        0,
        0,
        8,
        0,
        1,
        0x01,
        0x12,
        0,
        3,
        0,
        0,
        0,
        1,
        0,
        orientation,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real Ultralytics export with its class-score biases (the last conv of each `cv3` branch of
/// the detect head) set to `bias`. The reference graphs' random weights score every class near
/// 1.6e-4 (Ultralytics' bias initialisation), so they never propose anything; with a bias near 0
/// the same graph proposes plenty of boxes with uncertain scores — a stand-in for a half-trained
/// student.
pub fn student_with_class_bias(onnx: &[u8], bias: f32) -> anyhow::Result<Vec<u8>> {
    use prost::Message;
    let mut model = tract_onnx::pb::ModelProto::decode(onnx)?;
    let graph = model.graph.as_mut().ok_or_else(|| anyhow::anyhow!("no graph"))?;
    let mut changed = 0;
    for tensor in &mut graph.initializer {
        let is_class_bias =
            tensor.name.starts_with("model.") && tensor.name.contains(".cv3.") && tensor.name.ends_with(".2.bias");
        if !is_class_bias {
            continue;
        }
        if tensor.raw_data.is_empty() {
            tensor.float_data.iter_mut().for_each(|v| *v = bias);
        } else {
            tensor.raw_data = std::iter::repeat_n(bias.to_le_bytes(), tensor.raw_data.len() / 4)
                .flatten()
                .collect();
        }
        changed += 1;
    }
    anyhow::ensure!(changed > 0, "no detect-head class biases found");
    Ok(model.encode_to_vec())
}

/// Builds a zip from (name, bytes); names are written exactly as given (hostile ones included).
pub fn zip_of(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in entries {
        let _ = writer.start_file(*name, zip::write::SimpleFileOptions::default());
        let _ = writer.write_all(bytes);
    }
    writer.finish().map(Cursor::into_inner).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn numbered_jpegs_are_distinct() {
        let distinct: HashSet<Vec<u8>> = (0..300).map(|n| super::numbered_jpeg(96, 64, n)).collect();
        assert_eq!(distinct.len(), 300);
    }
}
