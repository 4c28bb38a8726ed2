//! Which anchors learn which object: Ultralytics' task-aligned assigner (`TaskAlignedAssigner`
//! in `ultralytics/utils/tal.py`, 8.4), one image at a time. It runs on detached predictions,
//! so it is plain arithmetic on slices: no gradients, no tensors.
//!
//! For every labeled box, the anchors whose centre lies inside it (tiny boxes widened to the
//! middle stride first) are ranked by the alignment metric `score^α · CIoU^β` — how well the
//! network already classifies *and* locates the object there — and the top `k` become its
//! positives. An anchor claimed by two boxes keeps the one it overlaps most. Each positive's
//! classification target is the alignment metric rescaled so the best anchor of a box aims at
//! that box's best overlap: a soft label, not a 1.

/// The assigner's settings (Ultralytics' `v8DetectionLoss` values by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AssignerConfig {
    /// Positives per labeled box.
    pub top_k: usize,
    /// Weight of the class score in the alignment metric.
    pub alpha: f32,
    /// Weight of the overlap in the alignment metric.
    pub beta: f32,
    /// Boxes with a side shorter than this (pixels) are widened to it when choosing candidate
    /// anchors, so a tiny object still has anchors inside it.
    pub min_side: f32,
}

impl Default for AssignerConfig {
    fn default() -> Self {
        Self {
            top_k: 10,
            alpha: 0.5,
            beta: 6.0,
            min_side: 16.0,
        }
    }
}

/// A labeled box the network should find: class and corners in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub class: usize,
    pub xyxy: [f32; 4],
}

/// The network's current guess at one anchor, detached: its box in input pixels and the
/// sigmoid score of every class.
#[derive(Debug, Clone, Copy)]
pub struct AnchorPrediction<'a> {
    pub xyxy: [f32; 4],
    pub scores: &'a [f32],
}

/// What one anchor is taught.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Positive {
    /// Index of the anchor.
    pub anchor: usize,
    /// Index of the target it learns.
    pub target: usize,
    /// Its classification target for that target's class (0..=1); every other class is 0.
    pub score: f32,
}

const EPS: f32 = 1e-9;

/// The positives of one image, by anchor index. `centres` are the anchors' centres in input
/// pixels; `predictions` the network's guess at each anchor, in the same order.
pub fn assign(
    config: &AssignerConfig,
    centres: &[[f32; 2]],
    predictions: &[AnchorPrediction<'_>],
    targets: &[Target],
) -> Vec<Positive> {
    let anchors = centres.len();
    if targets.is_empty() || anchors == 0 {
        return Vec::new();
    }
    // Per target: overlap and alignment at each candidate anchor (0 elsewhere), then its top k.
    let mut overlaps = vec![vec![0.0f32; anchors]; targets.len()];
    let mut alignments = vec![vec![0.0f32; anchors]; targets.len()];
    let mut positive = vec![vec![false; anchors]; targets.len()];
    for (t, target) in targets.iter().enumerate() {
        let candidate_box = widened(target.xyxy, config.min_side);
        let mut inside = vec![false; anchors];
        for (a, centre) in centres.iter().enumerate() {
            if !contains(candidate_box, *centre) {
                continue;
            }
            inside[a] = true;
            let overlap = ciou(target.xyxy, predictions[a].xyxy).max(0.0);
            let score = predictions[a].scores.get(target.class).copied().unwrap_or(0.0);
            overlaps[t][a] = overlap;
            alignments[t][a] = score.powf(config.alpha) * overlap.powf(config.beta);
        }
        for a in top_k(&alignments[t], config.top_k) {
            positive[t][a] = inside[a];
        }
    }

    // An anchor claimed by several targets goes to the one it overlaps most (first on a tie) —
    // among all targets it lies inside, as Ultralytics compares every overlap.
    for a in 0..anchors {
        let claims = (0..targets.len()).filter(|&t| positive[t][a]).count();
        if claims > 1 {
            let best = argmax((0..targets.len()).map(|t| overlaps[t][a]));
            for (t, row) in positive.iter_mut().enumerate() {
                row[a] = t == best;
            }
        }
    }

    // Rescale: a target's best-aligned positive aims at its best positive overlap.
    let mut scale = vec![0.0f32; targets.len()];
    for t in 0..targets.len() {
        let (mut best_alignment, mut best_overlap) = (0.0f32, 0.0f32);
        for a in (0..anchors).filter(|&a| positive[t][a]) {
            best_alignment = best_alignment.max(alignments[t][a]);
            best_overlap = best_overlap.max(overlaps[t][a]);
        }
        scale[t] = best_overlap / (best_alignment + EPS);
    }
    (0..anchors)
        .filter_map(|a| {
            let target = (0..targets.len()).find(|&t| positive[t][a])?;
            Some(Positive {
                anchor: a,
                target,
                score: alignments[target][a] * scale[target],
            })
        })
        .collect()
}

/// The box with each side at least `min_side`, about the same centre.
fn widened([x1, y1, x2, y2]: [f32; 4], min_side: f32) -> [f32; 4] {
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    let w = (x2 - x1).max(0.0);
    let h = (y2 - y1).max(0.0);
    let (w, h) = (
        if w < min_side { min_side } else { w },
        if h < min_side { min_side } else { h },
    );
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

/// Whether the point lies strictly inside the box.
fn contains([x1, y1, x2, y2]: [f32; 4], [x, y]: [f32; 2]) -> bool {
    x - x1 > EPS && y - y1 > EPS && x2 - x > EPS && y2 - y > EPS
}

/// Indices of the `k` largest values, largest first, the lower index first among equals.
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Complete IoU of two corner boxes (Ultralytics' `bbox_iou(..., CIoU=True)`, eps 1e-7): IoU
/// less the centres' squared distance over the enclosing box's squared diagonal, less an
/// aspect-ratio term.
pub fn ciou(a: [f32; 4], b: [f32; 4]) -> f32 {
    const E: f32 = 1e-7;
    let (w1, h1) = (a[2] - a[0], a[3] - a[1] + E);
    let (w2, h2) = (b[2] - b[0], b[3] - b[1] + E);
    let inter = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let union = w1 * h1 + w2 * h2 - inter + E;
    let iou = inter / union;
    let cw = a[2].max(b[2]) - a[0].min(b[0]);
    let ch = a[3].max(b[3]) - a[1].min(b[1]);
    let c2 = cw * cw + ch * ch + E;
    let rho2 = ((b[0] + b[2] - a[0] - a[2]).powi(2) + (b[1] + b[3] - a[1] - a[3]).powi(2)) / 4.0;
    let v = (4.0 / std::f32::consts::PI.powi(2)) * ((w2 / h2).atan() - (w1 / h1).atan()).powi(2);
    let alpha = v / (1.0 - iou + v + E);
    iou - (rho2 / c2 + v * alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tolerance: f32) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn ciou_of_hand_computed_pairs() {
        // Identical boxes: 1.
        assert!(close(ciou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0, 1e-6));
        // Same shape shifted by 5 px: IoU 50/150, enclosing 15×10 (c² 325), centres 5 apart
        // (ρ² 25), no aspect term: 1/3 − 25/325.
        let want = 1.0 / 3.0 - 25.0 / 325.0;
        assert!(close(ciou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]), want, 1e-6));
        // A 10×10 square in a 20×10 box sharing its left half: IoU 0.5, enclosing 20×10
        // (c² 500), centres 5 apart; v = 4/π² (atan 2 − atan 1)², α = v / (0.5 + v).
        let v = 4.0 / std::f32::consts::PI.powi(2) * (2.0f32.atan() - 1.0f32.atan()).powi(2);
        let want = 0.5 - (25.0 / 500.0 + v * v / (0.5 + v));
        assert!(close(ciou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0]), want, 1e-6));
        // Disjoint boxes go negative, by distance.
        assert!(ciou([0.0, 0.0, 1.0, 1.0], [10.0, 10.0, 11.0, 11.0]) < 0.0);
    }

    #[test]
    fn tiny_boxes_are_widened_about_their_centre() {
        assert_eq!(widened([10.0, 10.0, 14.0, 40.0], 16.0), [4.0, 10.0, 20.0, 40.0]);
        assert_eq!(widened([0.0, 0.0, 32.0, 32.0], 16.0), [0.0, 0.0, 32.0, 32.0]);
    }

    /// A row of anchors 8 px apart at y = 4, scoring `scores[a]` for class 0 and predicting
    /// `boxes[a]`.
    fn row(boxes: &[[f32; 4]]) -> Vec<[f32; 2]> {
        (0..boxes.len()).map(|a| [a as f32 * 8.0 + 4.0, 4.0]).collect()
    }

    #[test]
    fn the_best_aligned_anchors_inside_a_box_become_its_positives() {
        // Four anchors at x = 4, 12, 20, 28; target covers x 0..24 (anchors 0–2 inside).
        let target = Target {
            class: 0,
            xyxy: [0.0, 0.0, 24.0, 8.0],
        };
        let boxes = [
            [0.0, 0.0, 24.0, 8.0], // perfect box, score 0.25
            [0.0, 0.0, 12.0, 8.0], // half the box, score 1.0
            [0.0, 0.0, 24.0, 8.0], // perfect box, score 0.81
            [0.0, 0.0, 24.0, 8.0], // perfect, but outside the target
        ];
        let scores = [[0.25f32], [1.0], [0.81], [1.0]];
        let predictions: Vec<_> = boxes
            .iter()
            .zip(&scores)
            .map(|(b, s)| AnchorPrediction { xyxy: *b, scores: s })
            .collect();
        let config = AssignerConfig {
            top_k: 2,
            ..AssignerConfig::default()
        };
        let positives = assign(&config, &row(&boxes), &predictions, &[target]);

        // Alignments: √0.25·1 = 0.5, √1·ciou⁶ (small), √0.81·1 = 0.9, anchor 3 not a candidate.
        // Top 2: anchors 2 then 0. Best alignment 0.9 at best overlap 1: scores 1 and 0.5/0.9.
        assert_eq!(positives.len(), 2, "{positives:?}");
        assert_eq!((positives[0].anchor, positives[0].target), (0, 0));
        assert!(close(positives[0].score, 0.5 / 0.9, 1e-5), "{positives:?}");
        assert_eq!(positives[1].anchor, 2);
        assert!(close(positives[1].score, 1.0, 1e-5), "{positives:?}");
    }

    #[test]
    fn an_anchor_claimed_twice_goes_to_the_box_it_overlaps_most() {
        // Two targets both containing anchors 0 and 1; the prediction at both anchors is the
        // second target's box exactly, so both anchors go to target 1, none to target 0.
        let targets = [
            Target {
                class: 0,
                xyxy: [0.0, 0.0, 16.0, 8.0],
            },
            Target {
                class: 0,
                xyxy: [0.0, 0.0, 14.0, 8.0],
            },
        ];
        let boxes = [[0.0, 0.0, 14.0, 8.0]; 2];
        let scores = [[0.5f32], [0.5]];
        let predictions: Vec<_> = boxes
            .iter()
            .zip(&scores)
            .map(|(b, s)| AnchorPrediction { xyxy: *b, scores: s })
            .collect();
        let positives = assign(&AssignerConfig::default(), &row(&boxes), &predictions, &targets);
        assert_eq!(
            positives.iter().map(|p| (p.anchor, p.target)).collect::<Vec<_>>(),
            [(0, 1), (1, 1)]
        );
        // Equal alignments, overlap 1: both aim at 1.
        assert!(positives.iter().all(|p| close(p.score, 1.0, 1e-5)), "{positives:?}");
    }

    #[test]
    fn no_targets_or_anchors_outside_every_box_teach_nothing() {
        let boxes = [[0.0, 0.0, 8.0, 8.0]];
        let predictions = [AnchorPrediction {
            xyxy: boxes[0],
            scores: &[0.9],
        }];
        let config = AssignerConfig::default();
        assert!(assign(&config, &row(&boxes), &predictions, &[]).is_empty());
        let far = Target {
            class: 0,
            xyxy: [100.0, 100.0, 140.0, 140.0],
        };
        assert!(assign(&config, &row(&boxes), &predictions, &[far]).is_empty());
    }

    #[test]
    fn a_class_the_anchor_does_not_score_aligns_at_zero_but_stays_a_candidate() {
        // Class 1's score is 0: alignment 0 everywhere, still in the top k (nothing better),
        // so the anchor is a positive with target score 0 (0 / (0 + eps)).
        let boxes = [[0.0, 0.0, 8.0, 8.0]];
        let predictions = [AnchorPrediction {
            xyxy: boxes[0],
            scores: &[0.9, 0.0],
        }];
        let target = Target {
            class: 1,
            xyxy: [0.0, 0.0, 8.0, 8.0],
        };
        let positives = assign(&AssignerConfig::default(), &row(&boxes), &predictions, &[target]);
        assert_eq!(
            positives,
            [Positive {
                anchor: 0,
                target: 0,
                score: 0.0
            }]
        );
    }
}
