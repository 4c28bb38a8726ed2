//! The Ultralytics YOLO detection format: one `.txt` per image, one line per box,
//! `class cx cy w h` normalised to the upright image, and a `data.yaml` naming the classes.

use std::fmt::Write;

/// Decimal places in exported label files (what Ultralytics writes).
pub const DECIMALS: usize = 6;

/// One parsed label line.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloLabel {
    /// Contiguous class index (`0..nc`).
    pub class_index: usize,
    /// Centre x, width-normalised.
    pub cx: f64,
    /// Centre y, height-normalised.
    pub cy: f64,
    /// Width, normalised.
    pub w: f64,
    /// Height, normalised.
    pub h: f64,
}

impl YoloLabel {
    /// From pixel corners on a `width × height` image.
    pub fn from_corners(class_index: usize, [x0, y0, x1, y1]: [f64; 4], width: u32, height: u32) -> Self {
        let (iw, ih) = (f64::from(width), f64::from(height));
        Self {
            class_index,
            cx: (x0 + x1) / 2.0 / iw,
            cy: (y0 + y1) / 2.0 / ih,
            w: (x1 - x0) / iw,
            h: (y1 - y0) / ih,
        }
    }

    /// Pixel corners `[x0, y0, x1, y1]` on a `width × height` image.
    pub fn to_corners(&self, width: u32, height: u32) -> [f64; 4] {
        let (iw, ih) = (f64::from(width), f64::from(height));
        [
            (self.cx - self.w / 2.0) * iw,
            (self.cy - self.h / 2.0) * ih,
            (self.cx + self.w / 2.0) * iw,
            (self.cy + self.h / 2.0) * ih,
        ]
    }

    /// The label line, without a newline: `"3 0.500000 0.250000 0.100000 0.200000"`.
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(48);
        let _ = write!(
            line,
            "{} {:.p$} {:.p$} {:.p$} {:.p$}",
            self.class_index,
            self.cx,
            self.cy,
            self.w,
            self.h,
            p = DECIMALS
        );
        line
    }
}

/// A line of a label file that cannot be used, for an import report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Parses a label file. Accepts box lines (`c cx cy w h`) and segment lines (`c x1 y1 x2 y2 …`,
/// turned into their bounding box, as Ultralytics does for detection). Every value must lie in
/// `[0, 1]` and every class below `class_count`. Returns all problems, not just the first.
pub fn parse_labels(text: &str, class_count: usize) -> Result<Vec<YoloLabel>, Vec<LineError>> {
    let mut labels = Vec::new();
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line, class_count) {
            Ok(label) => labels.push(label),
            Err(message) => errors.push(LineError {
                line: index + 1,
                message,
            }),
        }
    }
    if errors.is_empty() { Ok(labels) } else { Err(errors) }
}

fn parse_line(line: &str, class_count: usize) -> Result<YoloLabel, String> {
    let mut fields = line.split_whitespace();
    let class_text = fields.next().unwrap_or_default();
    let class_index: usize = class_text
        .parse()
        .map_err(|_| format!("class {class_text:?} is not a non-negative integer"))?;
    if class_index >= class_count {
        return Err(format!(
            "class {class_index} is not below the class count {class_count}"
        ));
    }
    let values: Vec<f64> = fields
        .map(|v| v.parse::<f64>().map_err(|_| format!("{v:?} is not a number")))
        .collect::<Result<_, _>>()?;
    if let Some(bad) = values.iter().find(|v| !v.is_finite() || **v < 0.0 || **v > 1.0) {
        return Err(format!("{bad} is outside [0, 1]"));
    }
    match values.len() {
        4 => {
            let (cx, cy, w, h) = (values[0], values[1], values[2], values[3]);
            if w <= 0.0 || h <= 0.0 {
                return Err("the box has no area".into());
            }
            if cx - w / 2.0 < -1e-6 || cx + w / 2.0 > 1.0 + 1e-6 || cy - h / 2.0 < -1e-6 || cy + h / 2.0 > 1.0 + 1e-6 {
                return Err("the box reaches outside the image".into());
            }
            Ok(YoloLabel {
                class_index,
                cx,
                cy,
                w,
                h,
            })
        }
        n if n >= 6 && n % 2 == 0 => {
            let xs = values.iter().step_by(2);
            let ys = values.iter().skip(1).step_by(2);
            let (x0, x1) = xs.fold((1.0f64, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            let (y0, y1) = ys.fold((1.0f64, 0.0f64), |(lo, hi), &y| (lo.min(y), hi.max(y)));
            if x1 <= x0 || y1 <= y0 {
                return Err("the polygon has no area".into());
            }
            Ok(YoloLabel {
                class_index,
                cx: (x0 + x1) / 2.0,
                cy: (y0 + y1) / 2.0,
                w: x1 - x0,
                h: y1 - y0,
            })
        }
        n => Err(format!(
            "expected 5 values (class cx cy w h) or a polygon, found {}",
            n + 1
        )),
    }
}

/// `data.yaml` for an export. No `path:` key: Ultralytics then resolves the split folders
/// against the yaml's own folder, so the dataset trains from wherever it is unpacked.
pub fn data_yaml(class_names: &[&str], with_test: bool) -> String {
    let mut yaml = String::from("# Exported by Distillery. Train with: yolo detect train data=data.yaml\n");
    yaml.push_str("train: images/train\nval: images/val\n");
    if with_test {
        yaml.push_str("test: images/test\n");
    }
    let _ = writeln!(yaml, "nc: {}", class_names.len());
    yaml.push_str("names:\n");
    for (index, name) in class_names.iter().enumerate() {
        let _ = writeln!(yaml, "  {index}: {}", yaml_string(name));
    }
    yaml
}

/// A YAML scalar that reads back as exactly `text` (quoted, with `"` and `\` escaped).
fn yaml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_pixel_boxes() {
        // (class, corners, image w, h) -> line
        let cases = [
            (
                0,
                [0.0, 0.0, 100.0, 50.0],
                100,
                50,
                "0 0.500000 0.500000 1.000000 1.000000",
            ),
            (
                3,
                [10.0, 20.0, 30.0, 60.0],
                200,
                100,
                "3 0.100000 0.400000 0.100000 0.400000",
            ),
            (1, [0.0, 0.0, 1.0, 1.0], 3, 3, "1 0.166667 0.166667 0.333333 0.333333"),
        ];
        for (class, corners, w, h, expected) in cases {
            assert_eq!(YoloLabel::from_corners(class, corners, w, h).to_line(), expected);
        }
    }

    #[test]
    fn corners_round_trip() {
        let label = YoloLabel::from_corners(2, [12.5, 7.25, 90.0, 64.0], 640, 480);
        let back = label.to_corners(640, 480);
        for (a, b) in back.iter().zip([12.5, 7.25, 90.0, 64.0]) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn parses_files_and_reports_every_bad_line() {
        let ok = parse_labels("0 0.5 0.5 0.2 0.2\n\n1 0.1 0.1 0.2 0.1 0.2 0.3 0.1 0.3\n", 2);
        assert_eq!(
            ok,
            Ok(vec![
                YoloLabel {
                    class_index: 0,
                    cx: 0.5,
                    cy: 0.5,
                    w: 0.2,
                    h: 0.2
                },
                YoloLabel {
                    class_index: 1,
                    cx: 0.15000000000000002,
                    cy: 0.2,
                    w: 0.1,
                    h: 0.19999999999999998
                },
            ])
        );
        let cases = [
            ("0 0.5 0.5 0.2", "expected 5 values"),
            ("x 0.5 0.5 0.2 0.2", "is not a non-negative integer"),
            ("-1 0.5 0.5 0.2 0.2", "is not a non-negative integer"),
            ("5 0.5 0.5 0.2 0.2", "not below the class count 2"),
            ("0 1.5 0.5 0.2 0.2", "outside [0, 1]"),
            ("0 0.5 nan 0.2 0.2", "outside [0, 1]"),
            ("0 0.5 0.5 zero 0.2", "is not a number"),
            ("0 0.95 0.5 0.2 0.2", "reaches outside the image"),
            ("0 0.5 0.5 0 0.2", "no area"),
        ];
        for (line, expected) in cases {
            let text = format!("0 0.5 0.5 0.1 0.1\n{line}\n");
            match parse_labels(&text, 2) {
                Err(errors) => {
                    assert_eq!(errors.len(), 1, "{line}");
                    assert_eq!(errors[0].line, 2, "{line}");
                    assert!(errors[0].message.contains(expected), "{line}: {}", errors[0].message);
                }
                Ok(labels) => panic!("{line} was accepted: {labels:?}"),
            }
        }
    }

    #[test]
    fn data_yaml_has_no_path_and_quotes_names() {
        let yaml = data_yaml(&["car", "traffic \"light\""], false);
        assert_eq!(
            yaml,
            "# Exported by Distillery. Train with: yolo detect train data=data.yaml\n\
             train: images/train\nval: images/val\nnc: 2\nnames:\n  0: \"car\"\n  1: \"traffic \\\"light\\\"\"\n"
        );
        assert!(data_yaml(&["a"], true).contains("test: images/test\n"));
    }
}
