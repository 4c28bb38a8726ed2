//! Letterboxing: fit an image into the model's square input keeping its aspect ratio, pad the
//! rest with grey (114/255, as Ultralytics does), and map detections back to image pixels.

/// Grey level of the padding, as a fraction of full intensity (Ultralytics uses 114/255).
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// Where an image lands inside a square model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Scale from image pixels to input pixels (same on both axes).
    pub scale: f32,
    /// Left padding in input pixels.
    pub pad_x_px: f32,
    /// Top padding in input pixels.
    pub pad_y_px: f32,
    /// Width of the resized image inside the input, in input pixels.
    pub resized_width_px: u32,
    /// Height of the resized image inside the input, in input pixels.
    pub resized_height_px: u32,
}

impl Letterbox {
    /// Fits an `image_width_px × image_height_px` image into a square input of `input_size_px`,
    /// centred, with the padding split evenly (the odd pixel goes right/bottom, like Ultralytics).
    pub fn fit(image_width_px: u32, image_height_px: u32, input_size_px: u32) -> Self {
        let longest = image_width_px.max(image_height_px).max(1) as f32;
        let scale = input_size_px as f32 / longest;
        let resized = |side: u32| ((side as f32 * scale).round() as u32).clamp(1, input_size_px);
        let (resized_width_px, resized_height_px) = (resized(image_width_px), resized(image_height_px));
        Self {
            scale,
            pad_x_px: ((input_size_px - resized_width_px) / 2) as f32,
            pad_y_px: ((input_size_px - resized_height_px) / 2) as f32,
            resized_width_px,
            resized_height_px,
        }
    }

    /// Maps a point from model-input pixels back to image pixels.
    pub fn to_image(&self, x_px: f32, y_px: f32) -> (f32, f32) {
        ((x_px - self.pad_x_px) / self.scale, (y_px - self.pad_y_px) / self.scale)
    }

    /// Maps a box `[x0, y0, x1, y1]` from model-input pixels to image pixels, clipped to the image.
    pub fn box_to_image(&self, [x0, y0, x1, y1]: [f32; 4], image_width_px: u32, image_height_px: u32) -> [f32; 4] {
        let (x0, y0) = self.to_image(x0, y0);
        let (x1, y1) = self.to_image(x1, y1);
        let (w, h) = (image_width_px as f32, image_height_px as f32);
        [x0.clamp(0.0, w), y0.clamp(0.0, h), x1.clamp(0.0, w), y1.clamp(0.0, h)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_like_ultralytics() {
        // (image w, h, input) -> (scale, pad x, pad y, resized w, resized h)
        let cases = [
            ((640, 480, 640), (1.0, 0.0, 80.0, 640, 480)),
            ((480, 640, 640), (1.0, 80.0, 0.0, 480, 640)),
            ((1280, 720, 320), (0.25, 0.0, 70.0, 320, 180)),
            ((100, 100, 320), (3.2, 0.0, 0.0, 320, 320)),
            ((333, 111, 320), (320.0 / 333.0, 0.0, 106.0, 320, 107)),
        ];
        for ((w, h, size), (scale, pad_x, pad_y, rw, rh)) in cases {
            let lb = Letterbox::fit(w, h, size);
            assert!((lb.scale - scale).abs() < 1e-6, "{w}x{h}->{size}: {lb:?}");
            assert_eq!(
                (lb.pad_x_px, lb.pad_y_px, lb.resized_width_px, lb.resized_height_px),
                (pad_x, pad_y, rw, rh),
                "{w}x{h}->{size}"
            );
        }
    }

    #[test]
    fn maps_boxes_back_and_clips() {
        let lb = Letterbox::fit(1280, 720, 320);
        // The input's full resized area is the whole image.
        assert_eq!(
            lb.box_to_image([0.0, 70.0, 320.0, 250.0], 1280, 720),
            [0.0, 0.0, 1280.0, 720.0]
        );
        // A box reaching into the padding is clipped to the image.
        assert_eq!(
            lb.box_to_image([-10.0, 0.0, 10.0, 80.0], 1280, 720),
            [0.0, 0.0, 40.0, 40.0]
        );
    }
}
