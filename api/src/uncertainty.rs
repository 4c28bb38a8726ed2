//! Uncertainty ranking (DESIGN, "Uncertainty ranking"): how much labeling an image would teach
//! the model. Higher = label it sooner. Pure maths, shared by the browser worker (which scores
//! images as it pre-labels them) and the server (queue, and its own scoring job).

use serde::{Deserialize, Serialize};

use crate::split::splitmix64;

/// How the queue orders images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// `1 − p1`.
    LeastConfidence,
    /// `1 − (p1 − p2)`.
    Margin,
    /// `p2 / p1`.
    Ratio,
    /// `−Σ q log q / log C` over the normalised class scores.
    Entropy,
    /// `1 −` mean best IoU between the teacher's and the student's boxes, class-aware.
    Disagreement,
    /// k-center greedy over the model's `embedding` output.
    Diversity,
    /// Seeded shuffle: the baseline the others must beat.
    Random,
    /// *Approved* images, by how strongly a model disagrees with their human boxes
    /// (`label_errors::suspicions`): the labels most likely to be wrong first.
    LabelErrors,
}

impl Strategy {
    /// Every strategy, in the order the UI lists them.
    pub const ALL: [Strategy; 8] = [
        Self::LeastConfidence,
        Self::Margin,
        Self::Ratio,
        Self::Entropy,
        Self::Disagreement,
        Self::Diversity,
        Self::Random,
        Self::LabelErrors,
    ];

    /// The query-string spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeastConfidence => "least_confidence",
            Self::Margin => "margin",
            Self::Ratio => "ratio",
            Self::Entropy => "entropy",
            Self::Disagreement => "disagreement",
            Self::Diversity => "diversity",
            Self::Random => "random",
            Self::LabelErrors => "label_errors",
        }
    }

    /// The strategy named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The strategies scored per detection from class scores (and stored per image).
    pub fn per_detection(self) -> Option<DetectionMeasure> {
        match self {
            Self::LeastConfidence => Some(DetectionMeasure::LeastConfidence),
            Self::Margin => Some(DetectionMeasure::Margin),
            Self::Ratio => Some(DetectionMeasure::Ratio),
            Self::Entropy => Some(DetectionMeasure::Entropy),
            _ => None,
        }
    }
}

/// An uncertainty measure of one detection's class-score vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectionMeasure {
    /// `1 − p1`.
    LeastConfidence,
    /// `1 − (p1 − p2)`.
    Margin,
    /// `p2 / p1`.
    Ratio,
    /// Normalised entropy of the class scores.
    Entropy,
}

impl DetectionMeasure {
    /// Every per-detection measure.
    pub const ALL: [DetectionMeasure; 4] = [Self::LeastConfidence, Self::Margin, Self::Ratio, Self::Entropy];

    /// The ranking strategy this measure serves.
    pub fn strategy(self) -> Strategy {
        match self {
            Self::LeastConfidence => Strategy::LeastConfidence,
            Self::Margin => Strategy::Margin,
            Self::Ratio => Strategy::Ratio,
            Self::Entropy => Strategy::Entropy,
        }
    }

    /// The measure of one detection's class scores (any non-negative scores; sigmoid outputs
    /// need not sum to one). An empty or all-zero vector is maximally uncertain.
    pub fn of(self, class_scores: &[f32]) -> f32 {
        let (p1, p2) = top_two(class_scores);
        match self {
            Self::LeastConfidence => 1.0 - p1,
            Self::Margin => 1.0 - (p1 - p2),
            Self::Ratio => {
                if p1 > 0.0 {
                    p2 / p1
                } else {
                    1.0
                }
            }
            Self::Entropy => normalised_entropy(class_scores),
        }
    }
}

/// How an image's detections combine into one score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    #[default]
    /// The most uncertain detection decides.
    Max,
    /// The average over detections.
    Mean,
    /// The total over detections (more objects, more to check).
    Sum,
}

impl Aggregation {
    /// Every aggregation.
    pub const ALL: [Aggregation; 3] = [Self::Max, Self::Mean, Self::Sum];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Max => "max",
            Self::Mean => "mean",
            Self::Sum => "sum",
        }
    }

    /// The aggregation named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    fn combine(self, values: &[f32]) -> f32 {
        let sum: f32 = values.iter().sum();
        match self {
            Self::Max => values.iter().copied().fold(0.0, f32::max),
            Self::Mean => sum / values.len().max(1) as f32,
            Self::Sum => sum,
        }
    }
}

/// The score of an image with no confident detection, from its best candidate's score `s`:
/// `1 − |2s − 1|`, highest when the model was torn (s near 0.5).
pub fn empty_image_score(best_candidate_score: f32) -> f32 {
    1.0 - (2.0 * best_candidate_score.clamp(0.0, 1.0) - 1.0).abs()
}

/// One image's score for a per-detection measure: the aggregate over its detections' class-score
/// vectors, or the empty-image score of its best candidate when it has none.
pub fn image_score(
    measure: DetectionMeasure,
    aggregation: Aggregation,
    detections: &[&[f32]],
    best_candidate_score: f32,
) -> f32 {
    if detections.is_empty() {
        return empty_image_score(best_candidate_score);
    }
    let values: Vec<f32> = detections.iter().map(|scores| measure.of(scores)).collect();
    aggregation.combine(&values)
}

/// Every per-detection measure under every aggregation, as stored per image and model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredScore {
    /// The per-detection measure.
    pub strategy: Strategy,
    /// How it was aggregated over the image.
    pub aggregation: Aggregation,
    /// The image's score.
    pub score: f32,
}

/// The 4 × 3 scores of one image.
pub fn all_image_scores(detections: &[&[f32]], best_candidate_score: f32) -> Vec<MeasuredScore> {
    DetectionMeasure::ALL
        .iter()
        .flat_map(|&measure| {
            Aggregation::ALL.iter().map(move |&aggregation| MeasuredScore {
                strategy: measure.strategy(),
                aggregation,
                score: image_score(measure, aggregation, detections, best_candidate_score),
            })
        })
        .collect()
}

/// A box for disagreement: class and `[x0, y0, x1, y1]`.
pub type ClassBox = (u32, [f32; 4]);

/// Teacher–student disagreement: `1 −` the mean, over every box of both sets, of its best IoU with
/// a same-class box of the other set. Both empty → 0 (they agree there is nothing); one empty → 1.
pub fn disagreement(teacher: &[ClassBox], student: &[ClassBox]) -> f32 {
    let count = teacher.len() + student.len();
    if count == 0 {
        return 0.0;
    }
    let best = |from: &[ClassBox], to: &[ClassBox]| -> f32 {
        from.iter()
            .map(|(class, a)| {
                to.iter()
                    .filter(|(c, _)| c == class)
                    .map(|(_, b)| iou(*a, *b))
                    .fold(0.0, f32::max)
            })
            .sum()
    };
    1.0 - (best(teacher, student) + best(student, teacher)) / count as f32
}

/// The random baseline: a stable pseudo-random score in `[0, 1)` per image and seed.
pub fn random_score(image_id: i64, seed: u64) -> f32 {
    (splitmix64((image_id as u64) ^ seed.rotate_left(17)) >> 40) as f32 / (1u64 << 24) as f32
}

/// k-center greedy (Sener & Savarese): repeatedly picks the candidate farthest from every centre
/// so far. `centres` are embeddings already labeled; with none, the first pick is the candidate
/// farthest from the candidates' mean. Returns `(candidate index, distance when picked)` in pick
/// order, at most `k` of them.
pub fn k_center_greedy(candidates: &[&[f32]], centres: &[&[f32]], k: usize) -> Vec<(usize, f32)> {
    let mut nearest: Vec<f32> = candidates
        .iter()
        .map(|c| centres.iter().map(|m| distance(c, m)).fold(f32::INFINITY, f32::min))
        .collect();
    if centres.is_empty() && !candidates.is_empty() {
        let dims = candidates[0].len();
        let mean: Vec<f32> = (0..dims)
            .map(|d| candidates.iter().map(|c| c.get(d).copied().unwrap_or(0.0)).sum::<f32>() / candidates.len() as f32)
            .collect();
        nearest = candidates.iter().map(|c| distance(c, &mean)).collect();
    }
    let mut picked = Vec::with_capacity(k.min(candidates.len()));
    let mut taken = vec![false; candidates.len()];
    while picked.len() < k.min(candidates.len()) {
        let Some((index, far)) =
            nearest
                .iter()
                .enumerate()
                .filter(|(i, _)| !taken[*i])
                .fold(None, |best: Option<(usize, f32)>, (i, &d)| match best {
                    Some((_, bd)) if bd >= d => best,
                    _ => Some((i, d)),
                })
        else {
            break;
        };
        taken[index] = true;
        picked.push((index, far));
        for (i, c) in candidates.iter().enumerate() {
            nearest[i] = nearest[i].min(distance(c, candidates[index]));
        }
    }
    picked
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = area([a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

fn top_two(scores: &[f32]) -> (f32, f32) {
    scores.iter().fold((0.0f32, 0.0f32), |(p1, p2), &p| {
        if p > p1 {
            (p, p1)
        } else if p > p2 {
            (p1, p)
        } else {
            (p1, p2)
        }
    })
}

fn normalised_entropy(scores: &[f32]) -> f32 {
    let classes = scores.len();
    let total: f32 = scores.iter().map(|p| p.max(0.0)).sum();
    if classes < 2 || total <= 0.0 {
        return 1.0;
    }
    let entropy: f32 = scores
        .iter()
        .map(|p| p.max(0.0) / total)
        .filter(|q| *q > 0.0)
        .map(|q| -q * q.ln())
        .sum();
    entropy / (classes as f32).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn per_detection_measures_by_hand() {
        use DetectionMeasure::*;
        // (scores, least confidence, margin, ratio, entropy), worked out by hand:
        // [0.6, 0.3, 0.1]: q = same (sums to 1); H = −(.6 ln .6 + .3 ln .3 + .1 ln .1) = 0.897945,
        //   / ln 3 (1.098612) = 0.817347.
        // [0.8, 0.2]: q = (.8, .2); H = 0.500402 / ln 2 = 0.721928.
        // [0.4, 0.4]: a tie is as uncertain as it gets: margin 1, ratio 1, entropy 1.
        // [0.9, 0.0, 0.0, 0.0]: certain; entropy 0.
        // [0.5, 0.5, 0.0, 0.0] (sums to 1): H = ln 2 / ln 4 = 0.5.
        let cases: [(&[f32], [f32; 4]); 6] = [
            (&[0.6, 0.3, 0.1], [0.4, 0.7, 0.5, 0.817347]),
            (&[0.8, 0.2], [0.2, 0.4, 0.25, 0.721928]),
            (&[0.4, 0.4], [0.6, 1.0, 1.0, 1.0]),
            (&[0.9, 0.0, 0.0, 0.0], [0.1, 0.1, 0.0, 0.0]),
            (&[0.5, 0.5, 0.0, 0.0], [0.5, 1.0, 1.0, 0.5]),
            (&[], [1.0, 1.0, 1.0, 1.0]),
        ];
        for (scores, expected) in cases {
            for (measure, want) in [LeastConfidence, Margin, Ratio, Entropy].into_iter().zip(expected) {
                let got = measure.of(scores);
                assert!(close(got, want), "{measure:?} of {scores:?}: {got}, want {want}");
            }
        }
    }

    #[test]
    fn aggregations_and_empty_images() {
        let a: &[f32] = &[0.9, 0.1]; // least confidence 0.1
        let b: &[f32] = &[0.6, 0.2]; // 0.4
        let c: &[f32] = &[0.3, 0.3]; // 0.7
        let m = DetectionMeasure::LeastConfidence;
        let cases: [(Aggregation, &[&[f32]], f32, f32); 6] = [
            (Aggregation::Max, &[a, b, c], 0.0, 0.7),
            (Aggregation::Mean, &[a, b, c], 0.0, 0.4),
            (Aggregation::Sum, &[a, b, c], 0.0, 1.2),
            // No detection: the best candidate decides, most uncertain at 0.5.
            (Aggregation::Max, &[], 0.5, 1.0),
            (Aggregation::Sum, &[], 0.2, 0.4),
            (Aggregation::Mean, &[], 0.95, 0.1),
        ];
        for (aggregation, detections, best, want) in cases {
            let got = image_score(m, aggregation, detections, best);
            assert!(
                close(got, want),
                "{aggregation:?} {detections:?} {best}: {got}, want {want}"
            );
        }
        let all = all_image_scores(&[a], 0.0);
        assert_eq!(all.len(), 12);
        assert!(
            all.iter()
                .any(|s| s.strategy == Strategy::Margin && close(s.score, 0.2))
        );
    }

    #[test]
    fn disagreement_by_hand() {
        let unit = [0.0, 0.0, 10.0, 10.0];
        let half = [5.0, 0.0, 15.0, 10.0]; // IoU with unit = 50 / 150 = 1/3
        let cases: [(&[ClassBox], &[ClassBox], f32); 6] = [
            (&[], &[], 0.0),
            (&[(0, unit)], &[], 1.0),
            (&[(0, unit)], &[(0, unit)], 0.0),
            (&[(0, unit)], &[(1, unit)], 1.0), // same place, other class
            (&[(0, unit)], &[(0, half)], 1.0 - 1.0 / 3.0),
            // Teacher's box matched perfectly, the student's extra box matches nothing: 1 − 2/3.
            (&[(0, unit)], &[(0, unit), (0, [50.0, 50.0, 60.0, 60.0])], 1.0 / 3.0),
        ];
        for (teacher, student, want) in cases {
            let got = disagreement(teacher, student);
            assert!(close(got, want), "{teacher:?} vs {student:?}: {got}, want {want}");
        }
    }

    #[test]
    fn random_is_seeded_and_spread() {
        assert_eq!(random_score(7, 1), random_score(7, 1));
        assert_ne!(random_score(7, 1), random_score(7, 2));
        let scores: Vec<f32> = (0..1000).map(|id| random_score(id, 42)).collect();
        assert!(scores.iter().all(|s| (0.0..1.0).contains(s)));
        let below_half = scores.iter().filter(|s| **s < 0.5).count();
        assert!((400..600).contains(&below_half), "{below_half}");
    }

    #[test]
    fn k_center_picks_the_far_points_first() {
        let points: [&[f32]; 5] = [&[0.0, 0.0], &[0.1, 0.0], &[10.0, 0.0], &[0.0, 5.0], &[10.5, 0.0]];
        // Labeled centre at the origin: farthest is (10.5, 0); then (0, 5) (5 from the origin,
        // vs 0.5 for (10, 0) now); then (10, 0) (0.5 from (10.5, 0), vs 0.1 for (0.1, 0)).
        let picked = k_center_greedy(&points, &[&[0.0, 0.0]], 3);
        let order: Vec<usize> = picked.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [4, 3, 2]);
        assert!(close(picked[0].1, 10.5) && close(picked[1].1, 5.0) && close(picked[2].1, 0.5));
        // Without centres it starts from the point farthest from the mean, (10.5, 0).
        assert_eq!(k_center_greedy(&points, &[], 1)[0].0, 4);
        assert!(k_center_greedy(&[], &[], 3).is_empty());
    }

    #[test]
    fn strategies_round_trip_their_names() {
        for strategy in Strategy::ALL {
            assert_eq!(Strategy::parse(strategy.as_str()), Some(strategy));
        }
        assert_eq!(Strategy::parse("bogus"), None);
    }
}
