//! Label-error finding (active learning's "with labeled data" workflow): where a model disagrees
//! with the human boxes of an approved image, strongly enough that the label may be wrong. Pure
//! rules, shared by the server (which ranks images by them) and the editor (which shows them).

use serde::{Deserialize, Serialize};

/// A model box at least this confident is trusted enough to accuse a label.
pub const CONFIDENT: f32 = 0.5;
/// A human box and a model box are the same object from this IoU on.
pub const SAME_OBJECT_IOU: f32 = 0.5;
/// A model box of another class this close to a human box says the class is wrong.
pub const CLASS_IOU: f32 = 0.7;

/// What kind of mistake is suspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspicionKind {
    /// A confident model box where no human box is: a missed object.
    Missed,
    /// A human box no confident model box overlaps: spurious, or just hard.
    Spurious,
    /// A confident model box of another class over a human box: the wrong class.
    WrongClass,
}

impl SuspicionKind {
    /// The name used in keys and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missed => "missed",
            Self::Spurious => "spurious",
            Self::WrongClass => "wrong_class",
        }
    }
}

/// One suspected error on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspicion {
    /// Stable name of this suspicion for one model version: what confirming it stores.
    pub key: String,
    /// Its kind.
    pub kind: SuspicionKind,
    /// How strong the evidence is (0..1); an image ranks by its strongest suspicion.
    pub strength: f32,
    /// The human box accused (spurious, wrong class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_id: Option<String>,
    /// The model's class (missed, wrong class): what a fix would set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_id: Option<u32>,
    /// The model's box `[x0, y0, x1, y1]` in image pixels (missed, wrong class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_box: Option<[f32; 4]>,
    /// Why, in words, for the editor.
    pub reason: String,
}

/// `GET /api/images/{iid}/label-errors`: an approved image's open suspicions under one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageLabelErrors {
    /// The model version whose detections accuse.
    pub model_id: i64,
    /// Whether that model has detected on this image yet (nothing is suspected before).
    pub evaluated: bool,
    /// Suspicions not confirmed by a person, strongest first.
    pub suspicions: Vec<Suspicion>,
}

/// `POST /api/images/{iid}/label-errors/confirm`: the human label is right, do not raise this
/// suspicion again for this model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmLabel {
    /// The model version.
    pub model_id: i64,
    /// The suspicion's key.
    pub key: String,
}

/// A human box: id, project class, corners.
pub type HumanBox<'a> = (&'a str, u32, [f32; 4]);
/// A model box: project class, confidence, corners.
pub type ModelBox = (u32, f32, [f32; 4]);

/// The suspected errors of one image, strongest first. `class_name` names classes for the
/// reasons.
pub fn suspicions(human: &[HumanBox<'_>], model: &[ModelBox], class_name: &dyn Fn(u32) -> String) -> Vec<Suspicion> {
    let confident: Vec<&ModelBox> = model.iter().filter(|m| m.1 >= CONFIDENT).collect();
    let mut found = Vec::new();
    for &(class_id, score, corners) in &confident {
        if human.iter().all(|h| iou(h.2, *corners) < SAME_OBJECT_IOU) {
            found.push(Suspicion {
                key: format!("missed:{class_id}:{}", corner_key(*corners)),
                kind: SuspicionKind::Missed,
                strength: *score,
                box_id: None,
                class_id: Some(*class_id),
                model_box: Some(*corners),
                reason: format!(
                    "The model sees a {} here ({:.0} %) and no box covers it.",
                    class_name(*class_id),
                    score * 100.0
                ),
            });
        }
    }
    for &(box_id, class_id, corners) in human {
        let overlapping = || confident.iter().filter(move |m| iou(m.2, corners) >= SAME_OBJECT_IOU);
        let same_class = overlapping()
            .filter(|m| m.0 == class_id)
            .map(|m| m.1)
            .fold(0.0, f32::max);
        let other = overlapping()
            .filter(|m| m.0 != class_id && iou(m.2, corners) >= CLASS_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match other {
            Some(&&(other_class, score, model_corners)) if score > same_class => found.push(Suspicion {
                key: format!("wrong_class:{box_id}:{other_class}"),
                kind: SuspicionKind::WrongClass,
                strength: score,
                box_id: Some(box_id.to_owned()),
                class_id: Some(other_class),
                model_box: Some(model_corners),
                reason: format!(
                    "Labeled {}, but the model sees a {} ({:.0} %).",
                    class_name(class_id),
                    class_name(other_class),
                    score * 100.0
                ),
            }),
            _ if overlapping().next().is_none() => {
                // The model failing to find an object is weaker evidence than it finding another
                // one (the object may just be hard), so this weighs half: 1 − its best score for
                // any box on it, halved.
                let best = model
                    .iter()
                    .filter(|m| iou(m.2, corners) >= SAME_OBJECT_IOU)
                    .map(|m| m.1)
                    .fold(0.0, f32::max);
                found.push(Suspicion {
                    key: format!("spurious:{box_id}"),
                    kind: SuspicionKind::Spurious,
                    strength: (1.0 - best) / 2.0,
                    box_id: Some(box_id.to_owned()),
                    class_id: None,
                    model_box: None,
                    reason: format!(
                        "The model finds no {} here (best {:.0} %): spurious, or just hard.",
                        class_name(class_id),
                        best * 100.0
                    ),
                });
            }
            _ => {}
        }
    }
    found.sort_by(|a, b| b.strength.total_cmp(&a.strength));
    found
}

/// A model box's corners to the pixel: stable across reads of the same stored detections.
fn corner_key(corners: [f32; 4]) -> String {
    let [x0, y0, x1, y1] = corners.map(|v| v.round() as i64);
    format!("{x0},{y0},{x1},{y1}")
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let inter = area([a[0].max(b[0]), a[1].max(b[1]), a[2].min(b[2]), a[3].min(b[3])]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(class: u32) -> String {
        ["cat", "dog"][class as usize].to_owned()
    }
    const A: [f32; 4] = [0.0, 0.0, 10.0, 10.0];
    const B: [f32; 4] = [20.0, 20.0, 30.0, 30.0];
    const C: [f32; 4] = [40.0, 40.0, 50.0, 50.0];

    #[test]
    fn agreeing_labels_raise_nothing() {
        let human = [("a", 0, A), ("b", 1, B)];
        let model = [(0, 0.9, A), (1, 0.8, [20.0, 21.0, 30.0, 30.0]), (1, 0.3, C)];
        assert!(suspicions(&human, &model, &name).is_empty());
    }

    #[test]
    fn each_kind_with_its_strength() {
        let human = [("a", 0, A), ("b", 0, B)];
        // A confident dog where nobody drew (missed, 0.9); a dog over the cat "b" (wrong class,
        // 0.8, above the cat's 0.6); nothing confident over "a", only a 0.3 cat (spurious,
        // (1 − 0.3) / 2 = 0.35).
        let model = [(1, 0.9, C), (1, 0.8, B), (0, 0.6, B), (0, 0.3, A)];
        let found = suspicions(&human, &model, &name);
        let summary: Vec<(SuspicionKind, f32, Option<&str>)> = found
            .iter()
            .map(|s| (s.kind, s.strength, s.box_id.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (SuspicionKind::Missed, 0.9, None),
                (SuspicionKind::WrongClass, 0.8, Some("b")),
                (SuspicionKind::Spurious, 0.35, Some("a")),
            ]
        );
        assert_eq!(found[0].key, "missed:1:40,40,50,50");
        assert_eq!(found[1].key, "wrong_class:b:1");
        assert_eq!(found[1].class_id, Some(1));
        assert!(found[1].reason.contains("Labeled cat") && found[1].reason.contains("dog"));
        assert_eq!(found[2].key, "spurious:a");
    }

    #[test]
    fn a_more_confident_same_class_box_clears_the_class() {
        let human = [("b", 0, B)];
        let model = [(1, 0.6, B), (0, 0.9, B)];
        assert!(suspicions(&human, &model, &name).is_empty());
    }
}
