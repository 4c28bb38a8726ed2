//! Reading an uploaded image safely: detect the format from its bytes, refuse images whose
//! header promises more pixels than allowed (decompression bombs) before decoding, apply the
//! EXIF orientation, and make the thumbnail. Blocking: call it from `spawn_blocking`.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE_PX: u32 = 256;

/// What the studio needs to know about an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    /// File extension for the detected format (`jpg`, `png`, `webp`, `bmp`).
    pub extension: &'static str,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// JPEG thumbnail, upright, longest side at most [`THUMB_SIZE_PX`].
    pub thumbnail_jpeg: Vec<u8>,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Not an image in a supported format.
    #[error("this is not a JPEG, PNG, WebP or BMP image")]
    Unsupported,
    /// The header names more pixels than the limit.
    #[error("the image is {width}×{height} pixels, more than the {limit_mp} megapixel limit")]
    TooManyPixels { width: u32, height: u32, limit_mp: u64 },
    /// The bytes are damaged.
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

/// Inspects the image at `path`, allowing at most `max_pixels` pixels.
pub fn inspect(path: &Path, max_pixels: u64) -> Result<Inspected, InspectError> {
    let reader = ImageReader::open(path).map_err(|e| InspectError::Corrupt(e.to_string()))?;
    let (extension, picture) = decode_upright(reader, max_pixels)?;
    // Small images stay as they are: a thumbnail never enlarges.
    let thumbnail = if picture.width() > THUMB_SIZE_PX || picture.height() > THUMB_SIZE_PX {
        picture.thumbnail(THUMB_SIZE_PX, THUMB_SIZE_PX)
    } else {
        picture.clone()
    };
    let thumbnail = DynamicImage::ImageRgb8(thumbnail.to_rgb8());
    let mut thumbnail_jpeg = Vec::new();
    thumbnail
        .write_with_encoder(JpegEncoder::new_with_quality(Cursor::new(&mut thumbnail_jpeg), 82))
        .map_err(|e| InspectError::Corrupt(e.to_string()))?;
    Ok(Inspected {
        extension,
        width: picture.width(),
        height: picture.height(),
        thumbnail_jpeg,
    })
}

/// Decodes a stored image's bytes upright (EXIF orientation applied) as 8-bit RGB: what a
/// detector sees, the same pixels people label.
pub fn decode_upright_rgb(bytes: &[u8], max_pixels: u64) -> Result<image::RgbImage, InspectError> {
    decode_upright(ImageReader::new(Cursor::new(bytes)), max_pixels).map(|(_, picture)| picture.into_rgb8())
}

/// Detects the format, refuses pixel bombs from the header, decodes and applies EXIF orientation.
fn decode_upright<R: BufRead + Seek>(
    reader: ImageReader<R>,
    max_pixels: u64,
) -> Result<(&'static str, DynamicImage), InspectError> {
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| InspectError::Corrupt(e.to_string()))?;
    let extension = match reader.format() {
        Some(ImageFormat::Jpeg) => "jpg",
        Some(ImageFormat::Png) => "png",
        Some(ImageFormat::WebP) => "webp",
        Some(ImageFormat::Bmp) => "bmp",
        _ => return Err(InspectError::Unsupported),
    };
    let mut limits = Limits::default();
    // RGBA f32 is the widest buffer a decoder makes; anything above that for the pixel limit is
    // an attempt to exhaust memory.
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| InspectError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(InspectError::TooManyPixels {
            width,
            height,
            limit_mp: max_pixels / 1_000_000,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder).map_err(|e| InspectError::Corrupt(e.to_string()))?;
    picture.apply_orientation(orientation);
    Ok((extension, picture))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(file.path(), bytes).unwrap_or_else(|e| panic!("{e}"));
        file
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                RgbImage::new(width, height).as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn reads_size_and_thumbnail() {
        let file = write_temp(&png(640, 320));
        let inspected = inspect(file.path(), 10_000_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (inspected.extension, inspected.width, inspected.height),
            ("png", 640, 320)
        );
        let thumb = image::load_from_memory(&inspected.thumbnail_jpeg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((thumb.width(), thumb.height()), (256, 128));
    }

    /// A big-endian TIFF block with one IFD entry: Orientation (0x0112) = `orientation`.
    fn exif_orientation(orientation: u8) -> Vec<u8> {
        vec![
            b'M',
            b'M',
            0,
            42,
            0,
            0,
            0,
            8, // header, first IFD at offset 8
            0,
            1, // one entry
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
            0, // SHORT, count 1, value
            0,
            0,
            0,
            0, // no next IFD
        ]
    }

    #[test]
    fn applies_exif_orientation() {
        let mut jpeg = Vec::new();
        let mut encoder = JpegEncoder::new(&mut jpeg);
        encoder
            .set_exif_metadata(exif_orientation(6))
            .unwrap_or_else(|e| panic!("{e}"));
        encoder
            .write_image(RgbImage::new(40, 20).as_raw(), 40, 20, image::ExtendedColorType::Rgb8)
            .unwrap_or_else(|e| panic!("{e}"));
        let file = write_temp(&jpeg);
        let inspected = inspect(file.path(), 1_000_000).unwrap_or_else(|e| panic!("{e}"));
        // Stored 40×20, shown rotated 90°: 20×40.
        assert_eq!(
            (inspected.extension, inspected.width, inspected.height),
            ("jpg", 20, 40)
        );
        let thumb = image::load_from_memory(&inspected.thumbnail_jpeg).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((thumb.width(), thumb.height()), (20, 40), "upright, not enlarged");
    }

    /// A 1×1 PNG whose header is rewritten to claim `width × height`: a few dozen bytes, no
    /// pixel data behind the claim. Only a check of the header can refuse it by its size;
    /// decoding it would fail for the missing data instead.
    fn header_only_png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        // IHDR's data starts at byte 16 (8 signature, 4 length, 4 type); its CRC covers type + data.
        bytes[16..20].copy_from_slice(&width.to_be_bytes());
        bytes[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn refuses_bombs_before_decoding() {
        let bomb = header_only_png(100_000, 100_000);
        assert!(bomb.len() < 100, "{} bytes", bomb.len());
        let file = write_temp(&bomb);
        let result = inspect(file.path(), 20_000);
        assert!(
            matches!(
                result,
                Err(InspectError::TooManyPixels {
                    width: 100_000,
                    height: 100_000,
                    ..
                })
            ),
            "{result:?}"
        );
        // Within the limit the same header gets as far as decoding, which fails on the missing
        // pixels: the refusal above came from the header alone.
        let small = write_temp(&header_only_png(50, 40));
        assert!(
            matches!(inspect(small.path(), 20_000), Err(InspectError::Corrupt(_))),
            "a header-only image within the limit is corrupt, not too large"
        );
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        let file = write_temp(b"%PDF-1.7 not an image");
        assert!(matches!(
            inspect(file.path(), 1_000_000),
            Err(InspectError::Unsupported)
        ));
        let mut truncated = png(64, 64);
        truncated.truncate(60);
        let file = write_temp(&truncated);
        assert!(matches!(inspect(file.path(), 1_000_000), Err(InspectError::Corrupt(_))));
    }
}
