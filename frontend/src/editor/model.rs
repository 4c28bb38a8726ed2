//! The editor's data: boxes as shown, user actions as before/after pairs, and undo/redo.
//! Pure (no DOM), so the rules read on their own.

use api::{BoundingBox, BoxInput, BoxOp, BoxSource, OpKind};

/// A box as the editor holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct EditBox {
    /// UUID.
    pub id: String,
    /// Project class id.
    pub class_id: u32,
    /// `[x0, y0, x1, y1]` in upright image pixels.
    pub rect: [f64; 4],
    /// Who made it.
    pub source: BoxSource,
    /// Model confidence, for proposals.
    pub score: Option<f32>,
    /// Last revision the server confirmed (0 before the first confirmation).
    pub revision: u32,
}

impl From<BoundingBox> for EditBox {
    fn from(b: BoundingBox) -> Self {
        Self {
            id: b.id,
            class_id: b.class_id,
            rect: [b.x0, b.y0, b.x1, b.y1],
            source: b.source,
            score: b.confidence,
            revision: b.revision,
        }
    }
}

/// What one action did to one box: `None` before = created, `None` after = deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The box before, if it existed.
    pub before: Option<EditBox>,
    /// The box after, if it still exists.
    pub after: Option<EditBox>,
}

/// One undoable step (a drag, a class change, a paste of several boxes…).
pub type Action = Vec<Change>;

/// Applies a change to the box list.
pub fn apply(boxes: &mut Vec<EditBox>, change: &Change) {
    match (&change.before, &change.after) {
        (_, Some(after)) => match boxes.iter_mut().find(|b| b.id == after.id) {
            Some(slot) => {
                *slot = EditBox {
                    revision: slot.revision,
                    ..after.clone()
                }
            }
            None => boxes.push(after.clone()),
        },
        (Some(before), None) => boxes.retain(|b| b.id != before.id),
        (None, None) => {}
    }
}

/// The server operation for a change; `known_revision` is the revision the editor last saw.
pub fn to_op(change: &Change, known_revision: u32) -> Option<BoxOp> {
    let base_rev = (known_revision > 0).then_some(known_revision);
    match (&change.before, &change.after) {
        (None, Some(after)) => Some(BoxOp {
            op: OpKind::Create,
            bbox: input(after),
            base_rev: None,
        }),
        (Some(_), Some(after)) => Some(BoxOp {
            op: OpKind::Update,
            bbox: input(after),
            base_rev,
        }),
        (Some(before), None) => Some(BoxOp {
            op: OpKind::Delete,
            bbox: input(before),
            base_rev,
        }),
        (None, None) => None,
    }
}

fn input(b: &EditBox) -> BoxInput {
    let [x0, y0, x1, y1] = b.rect;
    BoxInput {
        id: Some(b.id.clone()),
        class_id: b.class_id,
        x0,
        y0,
        x1,
        y1,
    }
}

/// The action that undoes `action`.
pub fn inverse(action: &Action) -> Action {
    action
        .iter()
        .rev()
        .map(|c| Change {
            before: c.after.clone(),
            after: c.before.clone(),
        })
        .collect()
}

/// Undo and redo stacks of one person's actions on one image. Undo is per person (DESIGN.md):
/// a box someone else changed since is left as they made it, so my undo never reverts their
/// later work — nor removes a box they took over.
#[derive(Debug, Default, Clone)]
pub struct History {
    undo: Vec<Action>,
    redo: Vec<Action>,
}

/// What an undo or redo does now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replay {
    /// The changes to apply (empty when every box of the step was changed by someone since).
    pub action: Action,
    /// Boxes of the step left alone because they no longer are as this person left them.
    pub left_alone: Vec<String>,
}

impl History {
    /// Records a new action; anything undone before can no longer be redone.
    pub fn record(&mut self, action: Action) {
        if !action.is_empty() {
            self.undo.push(action);
            self.redo.clear();
        }
    }

    /// Undoes the last action on the boxes as they are `now`, if there is one.
    pub fn undo(&mut self, now: &[EditBox]) -> Option<Replay> {
        let action = self.undo.pop()?;
        let (still_mine, left_alone) = split_untouched(action, now, |change| &change.after);
        let replay = Replay {
            action: inverse(&still_mine),
            left_alone,
        };
        if !still_mine.is_empty() {
            self.redo.push(still_mine);
        }
        Some(replay)
    }

    /// Redoes the last undone action on the boxes as they are `now`, if there is one.
    pub fn redo(&mut self, now: &[EditBox]) -> Option<Replay> {
        let action = self.redo.pop()?;
        let (still_mine, left_alone) = split_untouched(action, now, |change| &change.before);
        if !still_mine.is_empty() {
            self.undo.push(still_mine.clone());
        }
        Some(Replay {
            action: still_mine,
            left_alone,
        })
    }
}

/// Splits an action into the changes whose box is `now` as `expected` says (nobody changed it
/// since) and the ids of the other boxes.
fn split_untouched(
    action: Action,
    now: &[EditBox],
    expected: impl Fn(&Change) -> &Option<EditBox>,
) -> (Action, Vec<String>) {
    let mut left_alone = Vec::new();
    let untouched = action
        .into_iter()
        .filter(|change| {
            let Some(id) = change.after.as_ref().or(change.before.as_ref()).map(|b| b.id.as_str()) else {
                return false;
            };
            let current = now.iter().find(|b| b.id == id);
            let same = match (current, expected(change)) {
                (None, None) => true,
                (Some(current), Some(wanted)) => current.class_id == wanted.class_id && current.rect == wanted.rect,
                _ => false,
            };
            if !same {
                left_alone.push(id.to_owned());
            }
            same
        })
        .collect();
    (untouched, left_alone)
}

/// A random (version 4) UUID, from the browser's `crypto.getRandomValues` (the `uuid` crate's
/// `js` source), which — unlike `crypto.randomUUID` — exists on plain-HTTP LAN deployments too.
pub fn new_box_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
