//! Training-time augmentation, Ultralytics' detection pipeline with its defaults: four images
//! in a mosaic (turned off for the last epochs), a random scale and translation, HSV jitter and
//! a horizontal flip. Boxes follow every geometric step; a box that the crop leaves too small
//! or too thin is dropped, as `RandomPerspective.box_candidates` drops it.

use fastrand::Rng;
use image::RgbImage;
use image::imageops::{self, FilterType};

use crate::assign::Target;

/// Grey that fills what no image covers (Ultralytics' 114).
pub const FILL: u8 = 114;

/// An image and its labeled boxes, corners in its own pixels.
#[derive(Debug, Clone)]
pub struct Sample {
    pub image: RgbImage,
    pub targets: Vec<Target>,
}

/// Augmentation strengths (Ultralytics' `default.yaml`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Hue, saturation and value gains are drawn from `1 ± these`.
    pub hsv: [f32; 3],
    /// Translation, a fraction of the output size, each way.
    pub translate: f32,
    /// Scale gain drawn from `1 ± scale`.
    pub scale: f32,
    /// Probability of a left–right flip.
    pub flip: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            hsv: [0.015, 0.7, 0.4],
            translate: 0.1,
            scale: 0.5,
            flip: 0.5,
        }
    }
}

/// The sample resized so its longer side is `size` (what Ultralytics' `load_image` caches).
pub fn fit_long_side(sample: &Sample, size: u32) -> Sample {
    let (w, h) = sample.image.dimensions();
    let ratio = size as f32 / w.max(h).max(1) as f32;
    let (nw, nh) = (
        ((w as f32 * ratio).round() as u32).max(1),
        ((h as f32 * ratio).round() as u32).max(1),
    );
    let image = if (nw, nh) == (w, h) {
        sample.image.clone()
    } else {
        imageops::resize(&sample.image, nw, nh, FilterType::Triangle)
    };
    let (sx, sy) = (nw as f32 / w.max(1) as f32, nh as f32 / h.max(1) as f32);
    Sample {
        image,
        targets: sample
            .targets
            .iter()
            .map(|t| Target {
                class: t.class,
                xyxy: [t.xyxy[0] * sx, t.xyxy[1] * sy, t.xyxy[2] * sx, t.xyxy[3] * sy],
            })
            .collect(),
    }
}

/// One training image of `size`², from `pool[index]` (and three random others when `mosaic`).
/// Pool samples are already fitted to `size` ([`fit_long_side`]).
pub fn augment(
    config: &AugmentConfig,
    pool: &[Sample],
    index: usize,
    size: u32,
    mosaic: bool,
    rng: &mut Rng,
) -> Sample {
    let mut sample = if mosaic && !pool.is_empty() {
        let four = [
            &pool[index],
            &pool[rng.usize(..pool.len())],
            &pool[rng.usize(..pool.len())],
            &pool[rng.usize(..pool.len())],
        ];
        let centre = [
            rng.f32() * size as f32 + size as f32 / 2.0,
            rng.f32() * size as f32 + size as f32 / 2.0,
        ];
        mosaic4(four, size, centre.map(|c| c as u32))
    } else {
        pool[index].clone()
    };
    let scale = 1.0 + config.scale * (2.0 * rng.f32() - 1.0);
    let shift = [
        (0.5 + config.translate * (2.0 * rng.f32() - 1.0)) * size as f32,
        (0.5 + config.translate * (2.0 * rng.f32() - 1.0)) * size as f32,
    ];
    sample = scale_and_shift(&sample, size, scale, shift);
    let gains = config.hsv.map(|g| 1.0 + g * (2.0 * rng.f32() - 1.0));
    jitter_hsv(&mut sample.image, gains);
    if rng.f32() < config.flip {
        flip_horizontal(&mut sample);
    }
    sample
}

/// Four images around `centre` on a `2·size` canvas (Ultralytics' `_mosaic4`): the first to the
/// top left of the centre, then top right, bottom left, bottom right, each cut where it leaves
/// the canvas.
pub fn mosaic4(images: [&Sample; 4], size: u32, centre: [u32; 2]) -> Sample {
    let side = 2 * size as i64;
    let mut canvas = RgbImage::from_pixel(side as u32, side as u32, image::Rgb([FILL; 3]));
    let mut targets = Vec::new();
    let (xc, yc) = (centre[0] as i64, centre[1] as i64);
    for (i, sample) in images.into_iter().enumerate() {
        let (w, h) = (sample.image.width() as i64, sample.image.height() as i64);
        // Where it lands on the canvas (a) and which part of it (b), as Ultralytics computes.
        let (x1a, y1a, x2a, y2a, x1b, y1b) = match i {
            0 => {
                let (x1a, y1a) = ((xc - w).max(0), (yc - h).max(0));
                (x1a, y1a, xc, yc, w - (xc - x1a), h - (yc - y1a))
            }
            1 => {
                let (y1a, x2a) = ((yc - h).max(0), (xc + w).min(side));
                (xc, y1a, x2a, yc, 0, h - (yc - y1a))
            }
            2 => {
                let (x1a, y2a) = ((xc - w).max(0), (yc + h).min(side));
                (x1a, yc, xc, y2a, w - (xc - x1a), 0)
            }
            _ => (xc, yc, (xc + w).min(side), (yc + h).min(side), 0, 0),
        };
        let (cw, ch) = ((x2a - x1a).min(w - x1b), (y2a - y1a).min(h - y1b));
        if cw > 0 && ch > 0 {
            let part = imageops::crop_imm(&sample.image, x1b as u32, y1b as u32, cw as u32, ch as u32).to_image();
            imageops::replace(&mut canvas, &part, x1a, y1a);
        }
        let (dx, dy) = ((x1a - x1b) as f32, (y1a - y1b) as f32);
        let limit = side as f32;
        for t in &sample.targets {
            let xyxy = [
                (t.xyxy[0] + dx).clamp(0.0, limit),
                (t.xyxy[1] + dy).clamp(0.0, limit),
                (t.xyxy[2] + dx).clamp(0.0, limit),
                (t.xyxy[3] + dy).clamp(0.0, limit),
            ];
            targets.push(Target { class: t.class, xyxy });
        }
    }
    Sample { image: canvas, targets }
}

/// A `size`² view of the sample scaled by `scale` about its centre, which lands at `shift`
/// (output pixels) — Ultralytics' `random_perspective` with no rotation, shear or perspective.
/// Bilinear, grey outside. Boxes are scaled, shifted, clipped, and dropped when what is left
/// is under 2 px a side, under a tenth of the scaled box's area, or thinner than 1:100.
pub fn scale_and_shift(sample: &Sample, size: u32, scale: f32, shift: [f32; 2]) -> Sample {
    let (w, h) = sample.image.dimensions();
    let centre = [w as f32 / 2.0, h as f32 / 2.0];
    let to_output = |x: f32, y: f32| [(x - centre[0]) * scale + shift[0], (y - centre[1]) * scale + shift[1]];
    let mut image = RgbImage::new(size, size);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        // Integer pixel coordinates map through the inverse transform, as in cv2.warpAffine.
        let sx = (x as f32 - shift[0]) / scale + centre[0];
        let sy = (y as f32 - shift[1]) / scale + centre[1];
        *pixel = bilinear(&sample.image, sx, sy);
    }
    let limit = size as f32;
    let targets = sample
        .targets
        .iter()
        .filter_map(|t| {
            let [x1, y1] = to_output(t.xyxy[0], t.xyxy[1]);
            let [x2, y2] = to_output(t.xyxy[2], t.xyxy[3]);
            let clipped = [
                x1.clamp(0.0, limit),
                y1.clamp(0.0, limit),
                x2.clamp(0.0, limit),
                y2.clamp(0.0, limit),
            ];
            let before = [(t.xyxy[2] - t.xyxy[0]) * scale, (t.xyxy[3] - t.xyxy[1]) * scale];
            keeps(before, [clipped[2] - clipped[0], clipped[3] - clipped[1]]).then_some(Target {
                class: t.class,
                xyxy: clipped,
            })
        })
        .collect();
    Sample { image, targets }
}

/// Ultralytics' `box_candidates(wh_thr=2, ar_thr=100, area_thr=0.1)`.
fn keeps([w1, h1]: [f32; 2], [w2, h2]: [f32; 2]) -> bool {
    const EPS: f32 = 1e-16;
    let aspect = (w2 / (h2 + EPS)).max(h2 / (w2 + EPS));
    w2 > 2.0 && h2 > 2.0 && w2 * h2 / (w1 * h1 + EPS) > 0.1 && aspect < 100.0
}

fn bilinear(image: &RgbImage, x: f32, y: f32) -> image::Rgb<u8> {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: i64, yi: i64, c: usize| -> f32 {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            FILL as f32
        } else {
            image.get_pixel(xi as u32, yi as u32)[c] as f32
        }
    };
    let (x0, y0) = (x0 as i64, y0 as i64);
    let mut out = [0u8; 3];
    for (c, value) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x0 + 1, y0, c) * fx;
        let bottom = at(x0, y0 + 1, c) * (1.0 - fx) + at(x0 + 1, y0 + 1, c) * fx;
        *value = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    image::Rgb(out)
}

/// Multiplies hue, saturation and value by `gains` (OpenCV's 8-bit HSV: hue wraps at 180,
/// saturation and value clip at 255), as Ultralytics' `RandomHSV` does with lookup tables.
pub fn jitter_hsv(image: &mut RgbImage, [gh, gs, gv]: [f32; 3]) {
    let hue: Vec<u8> = (0..180u32)
        .map(|x| ((x as f32 * gh) as i64).rem_euclid(180) as u8)
        .collect();
    let sat: Vec<u8> = (0..256u32).map(|x| (x as f32 * gs).clamp(0.0, 255.0) as u8).collect();
    let val: Vec<u8> = (0..256u32).map(|x| (x as f32 * gv).clamp(0.0, 255.0) as u8).collect();
    for pixel in image.pixels_mut() {
        let [h, s, v] = rgb_to_hsv(pixel.0);
        pixel.0 = hsv_to_rgb([hue[h as usize % 180], sat[s as usize], val[v as usize]]);
    }
}

/// OpenCV's `COLOR_RGB2HSV` for 8-bit images: H in 0..180, S and V in 0..=255.
fn rgb_to_hsv([r, g, b]: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    let s = if v > 0.0 { delta / v * 255.0 } else { 0.0 };
    let mut h = if delta == 0.0 {
        0.0
    } else if v == r {
        60.0 * (g - b) / delta
    } else if v == g {
        120.0 + 60.0 * (b - r) / delta
    } else {
        240.0 + 60.0 * (r - g) / delta
    };
    if h < 0.0 {
        h += 360.0;
    }
    [((h / 2.0).round() as u32 % 180) as u8, s.round() as u8, v as u8]
}

fn hsv_to_rgb([h, s, v]: [u8; 3]) -> [u8; 3] {
    let (h, s, v) = (h as f32 * 2.0, s as f32 / 255.0, v as f32);
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m].map(|value| value.round().clamp(0.0, 255.0) as u8)
}

/// Mirrors the image and its boxes left to right.
pub fn flip_horizontal(sample: &mut Sample) {
    imageops::flip_horizontal_in_place(&mut sample.image);
    let w = sample.image.width() as f32;
    for t in &mut sample.targets {
        t.xyxy = [w - t.xyxy[2], t.xyxy[1], w - t.xyxy[0], t.xyxy[3]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, rgb: [u8; 3], targets: Vec<Target>) -> Sample {
        Sample {
            image: RgbImage::from_pixel(w, h, image::Rgb(rgb)),
            targets,
        }
    }

    fn target(xyxy: [f32; 4]) -> Target {
        Target { class: 0, xyxy }
    }

    #[test]
    fn the_long_side_becomes_the_input_size() {
        let sample = fit_long_side(
            &solid(640, 320, [9, 9, 9], vec![target([64.0, 32.0, 128.0, 96.0])]),
            320,
        );
        assert_eq!(sample.image.dimensions(), (320, 160));
        assert_eq!(sample.targets[0].xyxy, [32.0, 16.0, 64.0, 48.0]);
    }

    #[test]
    fn a_mosaic_places_four_images_around_its_centre() {
        // Four 100² images of distinct colours, centre (150, 120) on a 400² canvas (size 200).
        let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
        let samples: Vec<Sample> = colours
            .iter()
            .map(|c| solid(100, 100, *c, vec![target([10.0, 10.0, 30.0, 40.0])]))
            .collect();
        let m = mosaic4([&samples[0], &samples[1], &samples[2], &samples[3]], 200, [150, 120]);
        assert_eq!(m.image.dimensions(), (400, 400));
        assert_eq!(m.image.get_pixel(149, 119).0, colours[0], "top left ends at the centre");
        assert_eq!(m.image.get_pixel(150, 119).0, colours[1], "top right starts there");
        assert_eq!(m.image.get_pixel(149, 120).0, colours[2]);
        assert_eq!(m.image.get_pixel(150, 120).0, colours[3]);
        assert_eq!(m.image.get_pixel(10, 10).0, [FILL; 3], "nothing reaches the corner");
        // Each image's box moves with it: the first's top-left is at (50, 20).
        let boxes: Vec<[f32; 4]> = m.targets.iter().map(|t| t.xyxy).collect();
        assert_eq!(
            boxes,
            [
                [60.0, 30.0, 80.0, 60.0],
                [160.0, 30.0, 180.0, 60.0],
                [60.0, 130.0, 80.0, 160.0],
                [160.0, 130.0, 180.0, 160.0]
            ]
        );
    }

    #[test]
    fn a_mosaic_cuts_an_image_at_the_canvas_edge() {
        // Centre (20, 20): the first image (100²) shows only its bottom-right 20², its box
        // [10, 10, 30, 40] lands at [-70, -70, -50, -40] and is clipped to nothing.
        let samples: Vec<Sample> = (0..4)
            .map(|_| solid(100, 100, [1, 2, 3], vec![target([10.0, 10.0, 30.0, 40.0])]))
            .collect();
        let m = mosaic4([&samples[0], &samples[1], &samples[2], &samples[3]], 200, [20, 20]);
        assert_eq!(m.targets[0].xyxy, [0.0, 0.0, 0.0, 0.0]);
        assert_eq!(m.image.get_pixel(0, 0).0, [1, 2, 3]);
    }

    #[test]
    fn scaling_about_the_centre_moves_boxes_and_drops_what_leaves() {
        // 100² sample, scale 2 about (50, 50) landing at the output's centre (50, 50): a box
        // at [40, 40, 60, 60] becomes [30, 30, 70, 70]; one at [0, 0, 10, 10] falls outside.
        let sample = solid(
            100,
            100,
            [200, 100, 50],
            vec![target([40.0, 40.0, 60.0, 60.0]), target([0.0, 0.0, 10.0, 10.0])],
        );
        let out = scale_and_shift(&sample, 100, 2.0, [50.0, 50.0]);
        assert_eq!(out.targets.len(), 1);
        assert_eq!(out.targets[0].xyxy, [30.0, 30.0, 70.0, 70.0]);
        assert_eq!(out.image.get_pixel(0, 0).0, [200, 100, 50], "scaled up, no grey");
        // Half size: the image covers the middle 50², grey around.
        let out = scale_and_shift(&sample, 100, 0.5, [50.0, 50.0]);
        assert_eq!(out.image.get_pixel(5, 5).0, [FILL; 3]);
        assert_eq!(out.image.get_pixel(50, 50).0, [200, 100, 50]);
        assert_eq!(out.targets[0].xyxy, [45.0, 45.0, 55.0, 55.0]);
    }

    #[test]
    fn box_candidates_by_hand() {
        assert!(keeps([10.0, 10.0], [10.0, 10.0]));
        assert!(!keeps([10.0, 10.0], [2.0, 10.0]), "2 px is not over 2");
        assert!(!keeps([100.0, 100.0], [30.0, 30.0]), "9 % of the area left");
        assert!(keeps([100.0, 100.0], [40.0, 30.0]), "12 % left");
        assert!(!keeps([1000.0, 5.0], [1000.0, 5.0]), "1:200");
    }

    #[test]
    fn hsv_round_trips_and_gains_act_on_their_channel() {
        for rgb in [[255, 0, 0], [0, 255, 0], [12, 200, 99], [128, 128, 128], [0, 0, 0]] {
            let back = hsv_to_rgb(rgb_to_hsv(rgb));
            for (a, b) in back.iter().zip(rgb) {
                assert!((*a as i32 - b as i32).abs() <= 3, "{rgb:?} → {back:?}");
            }
        }
        // OpenCV: pure red is (0, 255, 255), pure green (60, 255, 255).
        assert_eq!(rgb_to_hsv([255, 0, 0]), [0, 255, 255]);
        assert_eq!(rgb_to_hsv([0, 255, 0]), [60, 255, 255]);
        // Value halved: grey 200 → 100; saturation gain leaves grey grey.
        let mut image = RgbImage::from_pixel(1, 1, image::Rgb([200, 200, 200]));
        jitter_hsv(&mut image, [1.0, 1.7, 0.5]);
        assert_eq!(image.get_pixel(0, 0).0, [100, 100, 100]);
        // Hue gain on green (60): × 2 → 120, blue.
        let mut image = RgbImage::from_pixel(1, 1, image::Rgb([0, 255, 0]));
        jitter_hsv(&mut image, [2.0, 1.0, 1.0]);
        assert_eq!(image.get_pixel(0, 0).0, [0, 0, 255]);
    }

    #[test]
    fn a_flip_mirrors_boxes() {
        let mut sample = solid(100, 50, [0, 0, 0], vec![target([10.0, 5.0, 30.0, 25.0])]);
        sample.image.put_pixel(0, 0, image::Rgb([255, 255, 255]));
        flip_horizontal(&mut sample);
        assert_eq!(sample.targets[0].xyxy, [70.0, 5.0, 90.0, 25.0]);
        assert_eq!(sample.image.get_pixel(99, 0).0, [255, 255, 255]);
    }

    #[test]
    fn augment_gives_the_input_size_and_boxes_inside_it() {
        let pool: Vec<Sample> = (0..3)
            .map(|i| solid(320, 240, [i * 50, 90, 10], vec![target([40.0, 40.0, 200.0, 180.0])]))
            .collect();
        let mut rng = Rng::with_seed(7);
        for mosaic in [true, false] {
            for i in 0..3 {
                let out = augment(&AugmentConfig::default(), &pool, i, 320, mosaic, &mut rng);
                assert_eq!(out.image.dimensions(), (320, 320));
                for t in &out.targets {
                    assert!(t.xyxy[0] < t.xyxy[2] && t.xyxy[1] < t.xyxy[3], "{t:?}");
                    assert!(t.xyxy.iter().all(|v| (0.0..=320.0).contains(v)), "{t:?}");
                }
            }
        }
    }
}
