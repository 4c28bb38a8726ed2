//! Detector output layouts (DESIGN, "Model runtime contract"): recognised from the output shape
//! (and the class count the metadata gives), then decoded into candidates in model-input pixels.

use std::fmt;

/// How a detector lays out its one output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// Ultralytics v8/11 detect head: `[1, 4 + nc, N]`, rows `cx, cy, w, h`, then class scores.
    Ultralytics {
        /// Number of classes.
        classes: usize,
        /// Number of anchors (candidate boxes) per image.
        anchors: usize,
    },
    /// YOLOv5: `[1, N, 5 + nc]`, columns `cx, cy, w, h, objectness`, then class scores.
    YoloV5 {
        /// Number of classes.
        classes: usize,
        /// Number of anchors (candidate boxes) per image.
        anchors: usize,
    },
    /// NMS inside the graph: `[1, N, 6]`, columns `x0, y0, x1, y1, score, class`.
    EndToEnd {
        /// Number of classes.
        classes: usize,
        /// Number of anchors (candidate boxes) per image.
        anchors: usize,
    },
}

impl fmt::Display for OutputLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ultralytics { classes, anchors } => write!(f, "ultralytics [1, {}, {anchors}]", 4 + classes),
            Self::YoloV5 { classes, anchors } => write!(f, "yolov5 [1, {anchors}, {}]", 5 + classes),
            Self::EndToEnd { anchors, .. } => write!(f, "end-to-end [1, {anchors}, 6]"),
        }
    }
}

/// One above-threshold anchor before NMS, in model-input pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index of the best class.
    pub class_index: usize,
    /// Its score, 0..1.
    pub score: f32,
    /// `[x0, y0, x1, y1]` in model-input pixels.
    pub bbox: [f32; 4],
    /// Confidence of every class for this anchor (objectness folded in for YOLOv5).
    pub class_scores: Vec<f32>,
}

impl OutputLayout {
    /// Recognises the layout of an output of `shape`. `names` is the number of class names the
    /// metadata gives, when it gives any; it must agree with the shape.
    pub fn detect(shape: &[usize], names: Option<usize>) -> Result<Self, String> {
        let [1, a, b] = shape[..] else {
            return Err(format!(
                "output shape {shape:?} is not a detector output: expected [1, 4+classes, anchors] \
                 (Ultralytics), [1, anchors, 5+classes] (YOLOv5) or [1, anchors, 6] (end-to-end)"
            ));
        };
        let check = |classes: usize, layout: Self| match names {
            Some(n) if n != classes => Err(format!(
                "the output {shape:?} has {classes} classes but the metadata names {n} classes"
            )),
            _ => Ok(layout),
        };
        if a < b && a > 4 {
            check(
                a - 4,
                Self::Ultralytics {
                    classes: a - 4,
                    anchors: b,
                },
            )
        } else if a > b && b == 6 && names != Some(1) {
            Ok(Self::EndToEnd {
                classes: names.unwrap_or(0),
                anchors: a,
            })
        } else if a > b && b > 5 {
            check(
                b - 5,
                Self::YoloV5 {
                    classes: b - 5,
                    anchors: a,
                },
            )
        } else {
            Err(format!("output shape {shape:?} matches no supported detector layout"))
        }
    }

    /// Number of classes the model predicts (for end-to-end models, as many as the metadata names;
    /// 0 when it names none, and the largest class index seen then decides).
    pub fn classes(&self) -> usize {
        match *self {
            Self::Ultralytics { classes, .. } | Self::YoloV5 { classes, .. } | Self::EndToEnd { classes, .. } => {
                classes
            }
        }
    }

    /// Whether the graph already ran NMS.
    pub fn is_end_to_end(&self) -> bool {
        matches!(self, Self::EndToEnd { .. })
    }

    /// Anchors whose best class score is above `confidence` (strictly, as Ultralytics filters).
    /// `output` is the tensor in C order and must hold exactly the shape's element count.
    pub fn decode(&self, output: &[f32], confidence: f32) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        match *self {
            Self::Ultralytics { classes, anchors } => {
                if output.len() != (4 + classes) * anchors {
                    return candidates;
                }
                let row = |r: usize, j: usize| output[r * anchors + j];
                for j in 0..anchors {
                    let (class_index, score) = best((0..classes).map(|c| row(4 + c, j)));
                    if score > confidence {
                        let class_scores = (0..classes).map(|c| row(4 + c, j)).collect();
                        let bbox = corners(row(0, j), row(1, j), row(2, j), row(3, j));
                        candidates.push(Candidate {
                            class_index,
                            score,
                            bbox,
                            class_scores,
                        });
                    }
                }
            }
            Self::YoloV5 { classes, anchors } => {
                let width = 5 + classes;
                if output.len() != width * anchors {
                    return candidates;
                }
                for anchor in output.chunks_exact(width) {
                    let objectness = anchor[4];
                    if objectness <= confidence {
                        continue;
                    }
                    let class_scores: Vec<f32> = anchor[5..].iter().map(|p| p * objectness).collect();
                    let (class_index, score) = best(class_scores.iter().copied());
                    if score > confidence {
                        let bbox = corners(anchor[0], anchor[1], anchor[2], anchor[3]);
                        candidates.push(Candidate {
                            class_index,
                            score,
                            bbox,
                            class_scores,
                        });
                    }
                }
            }
            Self::EndToEnd { classes, anchors } => {
                if output.len() != 6 * anchors {
                    return candidates;
                }
                for row in output.chunks_exact(6) {
                    let (score, class) = (row[4], row[5]);
                    if score > confidence && class >= 0.0 {
                        let class_index = class.round() as usize;
                        // Only the winning class's score survives the graph's own NMS.
                        let mut class_scores = vec![0.0; classes.max(class_index + 1)];
                        class_scores[class_index] = score;
                        let bbox = [row[0], row[1], row[2], row[3]];
                        candidates.push(Candidate {
                            class_index,
                            score,
                            bbox,
                            class_scores,
                        });
                    }
                }
            }
        }
        candidates
    }
}

fn corners(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

/// Index and value of the largest score (the first one on ties).
fn best(scores: impl Iterator<Item = f32>) -> (usize, f32) {
    scores.enumerate().fold(
        (0, f32::NEG_INFINITY),
        |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_layouts() {
        use OutputLayout::*;
        type Case<'a> = (&'a [usize], Option<usize>, Result<OutputLayout, ()>);
        let cases: [Case; 9] = [
            (
                &[1, 84, 8400],
                Some(80),
                Ok(Ultralytics {
                    classes: 80,
                    anchors: 8400,
                }),
            ),
            (
                &[1, 84, 2100],
                None,
                Ok(Ultralytics {
                    classes: 80,
                    anchors: 2100,
                }),
            ),
            (
                &[1, 6, 8400],
                Some(2),
                Ok(Ultralytics {
                    classes: 2,
                    anchors: 8400,
                }),
            ),
            (
                &[1, 25200, 85],
                None,
                Ok(YoloV5 {
                    classes: 80,
                    anchors: 25200,
                }),
            ),
            (
                &[1, 300, 6],
                Some(80),
                Ok(EndToEnd {
                    classes: 80,
                    anchors: 300,
                }),
            ),
            (
                &[1, 300, 6],
                Some(1),
                Ok(YoloV5 {
                    classes: 1,
                    anchors: 300,
                }),
            ),
            (&[1, 84, 8400], Some(3), Err(())),
            (&[1, 1000], None, Err(())),
            (&[2, 84, 8400], None, Err(())),
        ];
        for (shape, names, expected) in cases {
            assert_eq!(
                OutputLayout::detect(shape, names).map_err(|_| ()),
                expected,
                "{shape:?} {names:?}"
            );
        }
    }

    #[test]
    fn decodes_ultralytics_rows() {
        // Two classes, three anchors; rows cx, cy, w, h, p0, p1.
        let layout = OutputLayout::Ultralytics { classes: 2, anchors: 3 };
        #[rustfmt::skip]
        let output = [
            10.0, 20.0, 30.0,
            10.0, 20.0, 30.0,
            4.0, 4.0, 4.0,
            2.0, 2.0, 2.0,
            0.9, 0.1, 0.3,
            0.05, 0.2, 0.6,
        ];
        let found = layout.decode(&output, 0.25);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].class_index, 0);
        assert_eq!(found[0].bbox, [8.0, 9.0, 12.0, 11.0]);
        assert_eq!(found[0].class_scores, [0.9, 0.05]);
        assert_eq!((found[1].class_index, found[1].score), (1, 0.6));
    }

    #[test]
    fn decodes_yolov5_with_objectness() {
        let layout = OutputLayout::YoloV5 { classes: 2, anchors: 2 };
        let output = [50.0, 50.0, 10.0, 10.0, 0.5, 0.2, 0.8, 5.0, 5.0, 2.0, 2.0, 0.1, 1.0, 0.0];
        let found = layout.decode(&output, 0.25);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].class_index, found[0].score), (1, 0.4));
        assert_eq!(found[0].class_scores, [0.1, 0.4]);
    }

    #[test]
    fn decodes_end_to_end_rows() {
        let layout = OutputLayout::EndToEnd { classes: 3, anchors: 2 };
        let output = [1.0, 2.0, 3.0, 4.0, 0.7, 2.0, 0.0, 0.0, 1.0, 1.0, 0.1, 0.0];
        let found = layout.decode(&output, 0.25);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].bbox, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(found[0].class_scores, [0.0, 0.0, 0.7]);
    }
}
