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

/// Undo and redo stacks of one person's actions on one image.
#[derive(Debug, Default, Clone)]
pub struct History {
    undo: Vec<Action>,
    redo: Vec<Action>,
}

impl History {
    /// Records a new action; anything undone before can no longer be redone.
    pub fn record(&mut self, action: Action) {
        if !action.is_empty() {
            self.undo.push(action);
            self.redo.clear();
        }
    }

    /// The action that undoes the last one, if any.
    pub fn undo(&mut self) -> Option<Action> {
        let action = self.undo.pop()?;
        let inverse = inverse(&action);
        self.redo.push(action);
        Some(inverse)
    }

    /// The action that redoes the last undone one, if any.
    pub fn redo(&mut self) -> Option<Action> {
        let action = self.redo.pop()?;
        self.undo.push(action.clone());
        Some(action)
    }
}

/// A random (version 4) UUID, from the browser's `crypto.getRandomValues` (the `uuid` crate's
/// `js` source), which — unlike `crypto.randomUUID` — exists on plain-HTTP LAN deployments too.
pub fn new_box_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
