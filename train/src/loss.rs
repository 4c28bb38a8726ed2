//! The YOLOv8 detection loss (Ultralytics' `v8DetectionLoss` and `BboxLoss`): binary
//! cross-entropy on every anchor's class logits against the assigner's soft targets, and for
//! the positives CIoU and distribution focal loss on the box, each weighted by the positive's
//! target score and divided by the sum of all target scores.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax, sigmoid, softmax};

use crate::assign::{AnchorPrediction, AssignerConfig, Target, assign};
use crate::yolo::{Anchor, REG_MAX, anchor_grid};

/// Gains and assigner settings (Ultralytics' `box`, `cls`, `dfl` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossConfig {
    pub box_gain: f32,
    pub class_gain: f32,
    pub dfl_gain: f32,
    pub assigner: AssignerConfig,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            box_gain: 7.5,
            class_gain: 0.5,
            dfl_gain: 1.5,
            assigner: AssignerConfig::default(),
        }
    }
}

/// One batch's loss: `total` to differentiate (the three parts with their gains, times the
/// batch size, as Ultralytics scales it), and the parts as numbers for the curves.
#[derive(Debug, Clone)]
pub struct Loss {
    pub total: Tensor<1>,
    pub parts: LossParts,
}

/// The three parts after their gains, per image (Ultralytics' `loss_items`).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossParts {
    pub box_loss: f32,
    pub class_loss: f32,
    pub dfl_loss: f32,
}

impl LossParts {
    pub fn is_finite(&self) -> bool {
        self.box_loss.is_finite() && self.class_loss.is_finite() && self.dfl_loss.is_finite()
    }
}

/// The loss of the head's raw maps (`Yolo::forward`) against each image's targets (corners in
/// input pixels).
pub fn detection_loss(config: &LossConfig, levels: Vec<Tensor<4>>, classes: usize, targets: &[Vec<Target>]) -> Loss {
    let device = levels[0].device();
    let grid = anchor_grid(&levels);
    let [batch, _, _, _] = levels[0].dims();
    let anchors = grid.len();
    let channels = 4 * REG_MAX + classes;
    let all: Tensor<3> = Tensor::cat(
        levels
            .into_iter()
            .map(|level| {
                let [_, c, h, w] = level.dims();
                level.reshape([batch, c, h * w])
            })
            .collect(),
        2,
    )
    .swap_dims(1, 2); // [B, N, C]
    let bins = all
        .clone()
        .slice([0..batch, 0..anchors, 0..4 * REG_MAX])
        .reshape([batch, anchors, 4, REG_MAX]);
    let logits = all.slice([0..batch, 0..anchors, 4 * REG_MAX..channels]);

    // Boxes in grid cells of each anchor's level: the expectation of each side's bins from the
    // anchor's centre.
    let positions = Tensor::<1, Int>::arange(0..REG_MAX as i64, &device)
        .float()
        .reshape([1, 1, 1, REG_MAX]);
    let distances: Tensor<3> = (softmax(bins.clone(), 3) * positions)
        .sum_dim(3)
        .reshape([batch, anchors, 4]);
    let centres: Vec<f32> = grid.iter().flat_map(|a| [a.x, a.y]).collect();
    let centres = Tensor::<1>::from_floats(centres.as_slice(), &device).reshape([1, anchors, 2]);
    let boxes = Tensor::cat(
        vec![
            centres.clone() - distances.clone().slice([0..batch, 0..anchors, 0..2]),
            centres + distances.slice([0..batch, 0..anchors, 2..4]),
        ],
        2,
    ); // [B, N, 4] xyxy, cells

    let targets_of_batch = Targets::assign(
        config,
        &grid,
        classes,
        boxes.clone().detach(),
        sigmoid(logits.clone().detach()),
        targets,
    );
    let score_sum = targets_of_batch.score_sum.max(1.0);

    let target_scores =
        Tensor::<1>::from_floats(targets_of_batch.scores.as_slice(), &device).reshape([batch, anchors, classes]);
    let class_loss = binary_cross_entropy_with_logits(logits, target_scores)
        .sum()
        .div_scalar(score_sum);

    let (box_loss, dfl_loss) = if targets_of_batch.positives.is_empty() {
        (Tensor::<1>::zeros([1], &device), Tensor::<1>::zeros([1], &device))
    } else {
        let positives = targets_of_batch.positives.len();
        let index = Tensor::<1, Int>::from_ints(targets_of_batch.positives.as_slice(), &device);
        let weight = Tensor::<1>::from_floats(targets_of_batch.weights.as_slice(), &device);
        let predicted = boxes.reshape([batch * anchors, 4]).select(0, index.clone());
        let wanted = Tensor::<1>::from_floats(targets_of_batch.boxes.as_slice(), &device).reshape([positives, 4]);
        let box_loss = ((ciou(predicted, wanted).neg().add_scalar(1.0)) * weight.clone())
            .sum()
            .div_scalar(score_sum);

        let bins = bins.reshape([batch * anchors, 4, REG_MAX]).select(0, index);
        let bin_weights =
            Tensor::<1>::from_floats(targets_of_batch.bin_weights.as_slice(), &device).reshape([positives, 4, REG_MAX]);
        // Cross-entropy against the two bins around the target distance, mean over the sides.
        let per_positive: Tensor<1> = (log_softmax(bins, 2) * bin_weights)
            .sum_dim(2)
            .mean_dim(1)
            .reshape([positives])
            .neg();
        (box_loss, (per_positive * weight).sum().div_scalar(score_sum))
    };

    let box_loss = box_loss.mul_scalar(config.box_gain);
    let class_loss = class_loss.mul_scalar(config.class_gain);
    let dfl_loss = dfl_loss.mul_scalar(config.dfl_gain);
    let parts = LossParts {
        box_loss: scalar(&box_loss),
        class_loss: scalar(&class_loss),
        dfl_loss: scalar(&dfl_loss),
    };
    Loss {
        total: (box_loss + class_loss + dfl_loss).mul_scalar(batch as f32),
        parts,
    }
}

fn scalar(tensor: &Tensor<1>) -> f32 {
    tensor
        .clone()
        .into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN)
}

/// Element-wise `−t·log σ(x) − (1 − t)·log(1 − σ(x))`, written as `(1 − t)·x − log σ(x)` so
/// large logits stay finite.
pub fn binary_cross_entropy_with_logits<const D: usize>(logits: Tensor<D>, targets: Tensor<D>) -> Tensor<D> {
    targets.neg().add_scalar(1.0) * logits.clone() - log_sigmoid(logits)
}

/// Complete IoU of corner boxes `[N, 4]` row by row (as `assign::ciou`); the aspect term's
/// weight is held constant, as Ultralytics computes it under `no_grad`.
pub fn ciou(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    const E: f32 = 1e-7;
    let [n, _] = a.dims();
    let column = |t: &Tensor<2>, i: usize| t.clone().slice([0..n, i..i + 1]).reshape([n]);
    let (ax1, ay1, ax2, ay2) = (column(&a, 0), column(&a, 1), column(&a, 2), column(&a, 3));
    let (bx1, by1, bx2, by2) = (column(&b, 0), column(&b, 1), column(&b, 2), column(&b, 3));
    let (w1, h1) = (ax2.clone() - ax1.clone(), (ay2.clone() - ay1.clone()).add_scalar(E));
    let (w2, h2) = (bx2.clone() - bx1.clone(), (by2.clone() - by1.clone()).add_scalar(E));
    let inter = (ax2.clone().min_pair(bx2.clone()) - ax1.clone().max_pair(bx1.clone())).clamp_min(0.0)
        * (ay2.clone().min_pair(by2.clone()) - ay1.clone().max_pair(by1.clone())).clamp_min(0.0);
    let union = (w1.clone() * h1.clone() + w2.clone() * h2.clone() - inter.clone()).add_scalar(E);
    let iou = inter / union;
    let cw = ax2.clone().max_pair(bx2.clone()) - ax1.clone().min_pair(bx1.clone());
    let ch = ay2.clone().max_pair(by2.clone()) - ay1.clone().min_pair(by1.clone());
    let c2 = (cw.powi_scalar(2) + ch.powi_scalar(2)).add_scalar(E);
    let rho2 = ((bx1 + bx2 - ax1 - ax2).powi_scalar(2) + (by1 + by2 - ay1 - ay2).powi_scalar(2)).div_scalar(4.0);
    let v = ((w2 / h2).atan() - (w1 / h1).atan())
        .powi_scalar(2)
        .mul_scalar(4.0 / std::f32::consts::PI.powi(2));
    let alpha = (v.clone() / (iou.clone().neg().add_scalar(1.0) + v.clone()).add_scalar(E)).detach();
    iou - (rho2 / c2 + v * alpha)
}

/// The assigner's answer for a batch, flattened for the loss's tensors.
struct Targets {
    /// `[B · N · classes]`, row-major.
    scores: Vec<f32>,
    score_sum: f32,
    /// Flat anchor index (`b · N + a`) of each positive.
    positives: Vec<i64>,
    /// Each positive's target box, corners in grid cells of its level.
    boxes: Vec<f32>,
    /// Each positive's weight: its target score.
    weights: Vec<f32>,
    /// `[positives · 4 · REG_MAX]`: for each side, the two bins around the target distance,
    /// weighted by nearness (the DFL target).
    bin_weights: Vec<f32>,
}

impl Targets {
    fn assign(
        config: &LossConfig,
        grid: &[Anchor],
        classes: usize,
        boxes: Tensor<3>,
        scores: Tensor<3>,
        targets: &[Vec<Target>],
    ) -> Self {
        let anchors = grid.len();
        let boxes = boxes.into_data().try_to_vec::<f32>().unwrap_or_default();
        let scores = scores.into_data().try_to_vec::<f32>().unwrap_or_default();
        let centres: Vec<[f32; 2]> = grid.iter().map(Anchor::centre_px).collect();
        let mut out = Self {
            scores: vec![0.0; targets.len() * anchors * classes],
            score_sum: 0.0,
            positives: Vec::new(),
            boxes: Vec::new(),
            weights: Vec::new(),
            bin_weights: Vec::new(),
        };
        for (b, image_targets) in targets.iter().enumerate() {
            let predictions: Vec<AnchorPrediction<'_>> = (0..anchors)
                .map(|a| {
                    let at = (b * anchors + a) * 4;
                    let s = grid[a].stride;
                    AnchorPrediction {
                        xyxy: [boxes[at] * s, boxes[at + 1] * s, boxes[at + 2] * s, boxes[at + 3] * s],
                        scores: &scores[(b * anchors + a) * classes..(b * anchors + a + 1) * classes],
                    }
                })
                .collect();
            for positive in assign(&config.assigner, &centres, &predictions, image_targets) {
                let target = image_targets[positive.target];
                let anchor = grid[positive.anchor];
                let flat = b * anchors + positive.anchor;
                if let Some(slot) = out.scores.get_mut(flat * classes + target.class) {
                    *slot = positive.score;
                }
                out.score_sum += positive.score;
                out.positives.push(flat as i64);
                out.weights.push(positive.score);
                let cells = target.xyxy.map(|v| v / anchor.stride);
                out.boxes.extend(cells);
                let sides = [
                    anchor.x - cells[0],
                    anchor.y - cells[1],
                    cells[2] - anchor.x,
                    cells[3] - anchor.y,
                ];
                for side in sides {
                    out.bin_weights.extend(dfl_bins(side));
                }
            }
        }
        out
    }
}

/// The DFL target of one side's distance (cells): weight on the bin below and the bin above,
/// by nearness, the distance clamped into the bins' range first.
fn dfl_bins(distance: f32) -> [f32; REG_MAX] {
    let distance = distance.clamp(0.0, REG_MAX as f32 - 1.0 - 0.01);
    let left = distance.floor() as usize;
    let mut bins = [0.0; REG_MAX];
    bins[left] = (left + 1) as f32 - distance;
    bins[left + 1] = distance - left as f32;
    bins
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yolo::STRIDES;

    fn close(a: f32, b: f32, tolerance: f32) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap_or_default()
    }

    /// The raw maps a 32 × 32 input gives (4², 2², 1² cells = 21 anchors), every value `fill`.
    fn flat_levels(batch: usize, classes: usize, fill: f32) -> Vec<Tensor<4>> {
        let device = Device::flex();
        STRIDES
            .iter()
            .map(|s| Tensor::full([batch, 4 * REG_MAX + classes, 32 / s, 32 / s], fill, &device))
            .collect()
    }

    #[test]
    fn dfl_targets_split_between_the_two_nearest_bins() {
        let bins = dfl_bins(2.25);
        assert_eq!((bins[2], bins[3]), (0.75, 0.25));
        assert_eq!(bins.iter().sum::<f32>(), 1.0);
        // Beyond the last bin: clamped to 14.99, almost all on bin 14.
        let bins = dfl_bins(40.0);
        assert!(close(bins[14], 0.01, 1e-4) && close(bins[15], 0.99, 1e-4), "{bins:?}");
        assert_eq!(dfl_bins(-3.0)[0], 1.0);
    }

    #[test]
    fn binary_cross_entropy_matches_its_definition() {
        let device = Device::flex();
        let logits = Tensor::<1>::from_floats([0.0, 2.0, -3.0, 30.0], &device);
        let targets = Tensor::<1>::from_floats([0.0, 1.0, 0.25, 0.0], &device);
        let got = floats(binary_cross_entropy_with_logits(logits, targets));
        assert_eq!(got.len(), 4);
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        let bce = |x: f32, t: f32| -(t * sigmoid(x).ln() + (1.0 - t) * (1.0 - sigmoid(x)).ln());
        for (g, want) in got.iter().zip([bce(0.0, 0.0), bce(2.0, 1.0), bce(-3.0, 0.25)]) {
            assert!(close(*g, want, 1e-5), "{g} vs {want}");
        }
        // σ(30) rounds to 1 in f32: the definition gives ∞, the stable form 30.
        assert!(close(got[3], 30.0, 1e-5), "{}", got[3]);
    }

    #[test]
    fn ciou_tensor_agrees_with_the_scalar_one() {
        let device = Device::flex();
        let pairs = [
            ([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]),
            ([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 10.0]),
            ([3.0, 1.0, 7.0, 9.0], [2.0, 2.0, 6.5, 5.0]),
        ];
        let a: Vec<f32> = pairs.iter().flat_map(|p| p.0).collect();
        let b: Vec<f32> = pairs.iter().flat_map(|p| p.1).collect();
        let got = floats(ciou(
            Tensor::<1>::from_floats(a.as_slice(), &device).reshape([3, 4]),
            Tensor::<1>::from_floats(b.as_slice(), &device).reshape([3, 4]),
        ));
        assert_eq!(got.len(), 3);
        for (g, (a, b)) in got.iter().zip(pairs) {
            assert!(close(*g, crate::assign::ciou(a, b), 1e-6), "{g}");
        }
    }

    #[test]
    fn an_image_without_objects_costs_only_its_class_logits() {
        // Logits 0: every one of 21 anchors × 3 classes × 2 images costs ln 2; no positives, so
        // the sum is divided by 1; gain 0.5; total times the batch of 2.
        let loss = detection_loss(&LossConfig::default(), flat_levels(2, 3, 0.0), 3, &[vec![], vec![]]);
        let want = 21.0 * 3.0 * 2.0 * std::f32::consts::LN_2 * 0.5;
        assert!(close(loss.parts.class_loss, want, 1e-5), "{:?}", loss.parts);
        assert_eq!((loss.parts.box_loss, loss.parts.dfl_loss), (0.0, 0.0));
        assert!(close(scalar(&loss.total), want * 2.0, 1e-5));
    }

    #[test]
    fn one_positive_with_flat_bins_by_hand() {
        // All-zero maps on a 32² input: every side's 16 bins equally likely (expected distance
        // 7.5 cells), every class scored σ(0) = ½. The target [2, 2, 30, 30] holds 16 stride-8
        // anchors, each predicting a 120 px square around itself that contains the target:
        // IoU 28²/120², enclosing diagonal² 2·120², no aspect term. With top_k 1 the one
        // positive is the anchor nearest the target's centre (16, 16): (12, 12), the first of
        // four 32 px² away, with CIoU c = 784/14400 − 32/28800. Its target score is its
        // alignment a = √½ · c⁶ times the best overlap over the best alignment plus Ultralytics'
        // 1e-9 — which is not negligible against a ≈ 1.6e-8: w = c · a / (a + 1e-9). Σw = w < 1
        // divides by 1.
        let c: f32 = 784.0 / 14400.0 - 32.0 / 28800.0;
        let a = 0.5f32.sqrt() * c.powi(6);
        let w = c * a / (a + 1e-9);
        let config = LossConfig {
            assigner: AssignerConfig {
                top_k: 1,
                ..AssignerConfig::default()
            },
            ..LossConfig::default()
        };
        let target = Target {
            class: 1,
            xyxy: [2.0, 2.0, 30.0, 30.0],
        };
        let loss = detection_loss(&config, flat_levels(1, 2, 0.0), 2, &[vec![target]]);
        let parts = loss.parts;
        // DFL: ln 16 per side, times w.
        assert!(close(parts.dfl_loss, 1.5 * 16f32.ln() * w, 1e-4), "{parts:?}");
        // Box: (1 − CIoU) times w.
        assert!(close(parts.box_loss, 7.5 * (1.0 - c) * w, 1e-4), "{parts:?}");
        // Class: BCE at logit 0 is ln 2 whatever the target, for 21 anchors × 2 classes.
        assert!(
            close(parts.class_loss, 0.5 * 42.0 * std::f32::consts::LN_2, 1e-5),
            "{parts:?}"
        );
    }

    #[test]
    fn the_loss_has_gradients_for_the_box_bins_and_the_logits() {
        let device = Device::flex().autodiff();
        let levels: Vec<Tensor<4>> = STRIDES
            .iter()
            .map(|s| Tensor::<4>::zeros([1, 4 * REG_MAX + 2, 32 / s, 32 / s], &device).require_grad())
            .collect();
        let target = Target {
            class: 1,
            xyxy: [2.0, 2.0, 30.0, 30.0],
        };
        let config = LossConfig {
            assigner: AssignerConfig {
                top_k: 1,
                ..AssignerConfig::default()
            },
            ..LossConfig::default()
        };
        let loss = detection_loss(&config, levels.clone(), 2, &[vec![target]]);
        let grads = loss.total.backward();
        let finest = levels[0].grad(&grads).map(floats).unwrap_or_default();
        assert_eq!(finest.len(), (4 * REG_MAX + 2) * 16, "a gradient for every value");
        // At the positive, anchor (1, 1) of the finest level: ∂BCE/∂x = σ(x) − t, times the
        // class gain ½ (batch 1, divided by 1): ¼ for class 0 (background), ½(½ − w) for class 1,
        // w the positive's target score (see the test above).
        let c: f32 = 784.0 / 14400.0 - 32.0 / 28800.0;
        let a = 0.5f32.sqrt() * c.powi(6);
        let w = c * a / (a + 1e-9);
        let at = |channel: usize| finest[channel * 16 + 5];
        assert!(close(at(64), 0.25, 1e-5), "class 0: {}", at(64));
        assert!(close(at(65), 0.5 * (0.5 - w), 1e-4), "class 1: {}", at(65));
        // The box bins learn too (the target's sides sit at 1.25 and 2.25 cells, not 7.5).
        assert!(at(0) != 0.0, "box bin {}", at(0));
    }
}
