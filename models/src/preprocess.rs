//! Turns decoded pixels into the model's input tensor: letterbox (bilinear resize, grey pad),
//! RGB, /255, NCHW f32 — what Ultralytics' `LetterBox` + `cv2.resize(INTER_LINEAR)` produce.

use crate::letterbox::Letterbox;

/// Interleaved 8-bit pixels of an upright image.
#[derive(Debug, Clone, Copy)]
pub struct Pixels<'a> {
    /// Row-major pixels, `channels` bytes each.
    pub data: &'a [u8],
    /// Width, pixels.
    pub width_px: u32,
    /// Height, pixels.
    pub height_px: u32,
    /// 3 for RGB, 4 for RGBA (alpha ignored, as a canvas's `getImageData` gives).
    pub channels: usize,
}

impl Pixels<'_> {
    /// Whether `data` holds exactly `width × height × channels` bytes of RGB or RGBA.
    pub fn is_consistent(&self) -> bool {
        matches!(self.channels, 3 | 4)
            && self.width_px > 0
            && self.height_px > 0
            && self.data.len() == self.width_px as usize * self.height_px as usize * self.channels
    }
}

/// Builds the `[1, 3, size, size]` input (C order) and the letterbox that maps boxes back.
/// The caller checks [`Pixels::is_consistent`] first.
pub fn input_tensor(pixels: Pixels<'_>, size_px: u32) -> (Vec<f32>, Letterbox) {
    let letterbox = Letterbox::fit(pixels.width_px, pixels.height_px, size_px);
    let size = size_px as usize;
    let plane = size * size;
    let pad = (114.0f32 / 255.0).min(1.0);
    let mut tensor = vec![pad; 3 * plane];
    let (out_w, out_h) = (
        letterbox.resized_width_px as usize,
        letterbox.resized_height_px as usize,
    );
    let (left, top) = (letterbox.pad_x_px as usize, letterbox.pad_y_px as usize);
    let columns = axis_samples(pixels.width_px as usize, out_w);
    let rows = axis_samples(pixels.height_px as usize, out_h);
    let stride = pixels.width_px as usize * pixels.channels;
    for (y, row) in rows.iter().enumerate() {
        let (upper, lower) = (row.low * stride, row.high * stride);
        for (x, column) in columns.iter().enumerate() {
            let (a, b) = (column.low * pixels.channels, column.high * pixels.channels);
            let at = (top + y) * size + left + x;
            for channel in 0..3 {
                let sample = |offset: usize| pixels.data[offset + channel] as f32;
                let over = sample(upper + a) * (1.0 - column.weight) + sample(upper + b) * column.weight;
                let under = sample(lower + a) * (1.0 - column.weight) + sample(lower + b) * column.weight;
                let value = over * (1.0 - row.weight) + under * row.weight;
                // cv2 rounds the resized image back to 8 bits before it is scaled.
                tensor[channel * plane + at] = value.round().clamp(0.0, 255.0) / 255.0;
            }
        }
    }
    (tensor, letterbox)
}

/// Where one output pixel samples along an axis: two neighbours and the weight of the second.
struct AxisSample {
    low: usize,
    high: usize,
    weight: f32,
}

/// Half-pixel-centre bilinear sampling positions (OpenCV's `INTER_LINEAR`).
fn axis_samples(source: usize, target: usize) -> Vec<AxisSample> {
    let ratio = source as f32 / target as f32;
    (0..target)
        .map(|i| {
            let position = ((i as f32 + 0.5) * ratio - 0.5).max(0.0);
            let low = (position.floor() as usize).min(source - 1);
            let high = (low + 1).min(source - 1);
            AxisSample {
                low,
                high,
                weight: position - low as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_and_scales_into_nchw() {
        // A 4×2 image, red on the left half, blue on the right, into an 8×8 input:
        // resized to 8×4, padded 2 rows above and below.
        let mut data = Vec::new();
        for _ in 0..2 {
            for x in 0..4 {
                data.extend_from_slice(if x < 2 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let pixels = Pixels {
            data: &data,
            width_px: 4,
            height_px: 2,
            channels: 3,
        };
        assert!(pixels.is_consistent());
        let (tensor, letterbox) = input_tensor(pixels, 8);
        assert_eq!((letterbox.pad_x_px, letterbox.pad_y_px), (0.0, 2.0));
        let at = |c: usize, y: usize, x: usize| tensor[c * 64 + y * 8 + x];
        assert_eq!(at(0, 0, 0), 114.0 / 255.0); // padding
        assert_eq!(at(0, 2, 0), 1.0); // red, left
        assert_eq!(at(2, 2, 0), 0.0);
        assert_eq!(at(2, 5, 7), 1.0); // blue, right
        assert_eq!(at(1, 7, 7), 114.0 / 255.0);
        // The seam blends: output x=3 samples source x=1.25 → 0.75 red.
        assert_eq!(at(0, 3, 3), (255.0f32 * 0.75).round() / 255.0);
    }

    #[test]
    fn refuses_inconsistent_buffers() {
        let data = [0u8; 10];
        assert!(
            !Pixels {
                data: &data,
                width_px: 2,
                height_px: 2,
                channels: 3
            }
            .is_consistent()
        );
        assert!(
            !Pixels {
                data: &data,
                width_px: 5,
                height_px: 1,
                channels: 2
            }
            .is_consistent()
        );
    }
}
