//! A YOLO data set on disk (`images/<split>/*.jpg` beside `labels/<split>/*.txt`, one
//! `class cx cy w h` line per box, normalised) as training samples — what the benchmark and
//! the tests train on; the server builds its samples from the database instead.

use std::path::Path;

use crate::assign::Target;
use crate::augment::Sample;

/// Every image of `split` with its boxes in pixels, by file name. An image without a label
/// file has no boxes (Ultralytics' background image).
pub fn load_split(root: &Path, split: &str) -> Result<Vec<Sample>, String> {
    let images = root.join("images").join(split);
    let mut paths: Vec<_> = std::fs::read_dir(&images)
        .map_err(|e| format!("{}: {e}", images.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["jpg", "jpeg", "png", "bmp", "webp"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let image = image::open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .to_rgb8();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let label = root.join("labels").join(split).join(format!("{stem}.txt"));
            let text = std::fs::read_to_string(&label).unwrap_or_default();
            let targets = parse_labels(&text, image.width() as f32, image.height() as f32)
                .map_err(|e| format!("{}: {e}", label.display()))?;
            Ok(Sample { image, targets })
        })
        .collect()
}

/// `class cx cy w h` lines (normalised) as corner boxes in pixels of a `w × h` image.
pub fn parse_labels(text: &str, width: f32, height: f32) -> Result<Vec<Target>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = || format!("line {}: expected `class cx cy w h`, got {line:?}", n + 1);
            let [class, cx, cy, w, h] = fields[..] else {
                return Err(bad());
            };
            let class = class.parse::<usize>().map_err(|_| bad())?;
            let [cx, cy, w, h] = [cx, cy, w, h].map(|v| v.parse::<f32>().unwrap_or(f32::NAN));
            if ![cx, cy, w, h].iter().all(|v| v.is_finite()) {
                return Err(bad());
            }
            Ok(Target {
                class,
                xyxy: [
                    (cx - w / 2.0) * width,
                    (cy - h / 2.0) * height,
                    (cx + w / 2.0) * width,
                    (cy + h / 2.0) * height,
                ],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_lines_become_pixel_corners() {
        let boxes = parse_labels("1 0.5 0.25 0.2 0.1\n\n0 0.1 0.1 0.2 0.2\n", 200.0, 100.0).unwrap_or_default();
        let want = [(1, [80.0, 20.0, 120.0, 30.0]), (0, [0.0, 0.0, 40.0, 20.0])];
        assert_eq!(boxes.len(), want.len());
        for (got, (class, xyxy)) in boxes.iter().zip(want) {
            assert_eq!(got.class, class);
            assert!(got.xyxy.iter().zip(xyxy).all(|(a, b)| (a - b).abs() < 1e-4), "{got:?}");
        }
        assert!(parse_labels("1 0.5 0.5 nan 0.1", 1.0, 1.0).is_err());
        assert!(parse_labels("one 0.5 0.5 0.1 0.1", 1.0, 1.0).is_err());
    }
}
