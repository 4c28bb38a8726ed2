//! The student in the editor: its proposals for the image on screen, background pre-labeling of
//! the rest of the project, and the hot swap — when the project's live channel says another
//! student is active (a training published one, someone rolled back), the editor drops the old
//! proposals, runs the new student on the image on screen and restarts background scoring for
//! it, without a reload. Choosing another engine (GPU or CPU) in the panel reruns the student the
//! same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use api::RegisteredModel;
use api::worker::{Engine, EngineChoice, ModelSource};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::canvas::ProposalBox;
use crate::prelabel;

/// Where the student's proposals for this image are.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PrelabelState {
    NoModel,
    Running,
    Ready {
        /// The student that made the proposals shown.
        model_id: i64,
        ms: f64,
        source: ModelSource,
        engine: Engine,
        unmapped: usize,
    },
    Failed(String),
}

/// What the editor shows of its student; all signals, so the panel follows a swap.
#[derive(Clone, Copy)]
pub(super) struct StudentView {
    /// The student whose proposals are shown (the project's active one).
    pub student: RwSignal<Option<RegisteredModel>>,
    pub state: RwSignal<PrelabelState>,
    /// "Student v3 (mAP50 0.81, was 0.64) is now pre-labeling", after a swap.
    pub swapped: RwSignal<Option<String>>,
    /// Where this browser runs students (the panel's choice, remembered across pages).
    pub engine: RwSignal<EngineChoice>,
}

/// One image's view of the project's student, kept current for as long as the editor is open.
#[derive(Clone, Copy)]
pub(super) struct StudentOnImage {
    pub project_id: i64,
    pub image_id: i64,
    pub width: u32,
    pub height: u32,
    /// The editor's proposals: the student's are replaced on a swap, the teacher's stay.
    pub proposals: RwSignal<Vec<ProposalBox>>,
}

impl StudentOnImage {
    /// Runs `initial` (the student active when the editor opened), then swaps to each student
    /// `published` names (the live channel's word on the active student: after every
    /// (re)connection and on every change). Stops when the editor closes.
    pub fn start(
        self,
        initial: Option<RegisteredModel>,
        published: ReadSignal<Option<Option<RegisteredModel>>>,
    ) -> StudentView {
        let view = StudentView {
            student: RwSignal::new(None),
            state: RwSignal::new(PrelabelState::NoModel),
            swapped: RwSignal::new(None),
            engine: RwSignal::new(prelabel::remembered_engine()),
        };
        // The background loop of the student now shown; replaced on a swap.
        let background = StoredValue::new(Arc::new(AtomicBool::new(false)));
        let swap = {
            // `try_`: an event may still arrive in the tick the editor closes.
            move |model: Option<RegisteredModel>| {
                background.try_with_value(|stop| stop.store(true, Ordering::Relaxed));
                view.student.try_set(model.clone());
                view.state.try_set(PrelabelState::NoModel);
                self.proposals
                    .try_update(|list| list.retain(|p| p.source != api::BoxSource::Student));
                if let Some(model) = model {
                    let stop = Arc::new(AtomicBool::new(false));
                    background.try_set_value(stop.clone());
                    self.run(model, view, stop);
                }
            }
        };
        swap(initial);

        Effect::new(move |_| {
            let Some(model) = published.get() else {
                return; // nothing heard yet
            };
            let Some(shown) = view.student.try_get_untracked() else {
                return; // the editor has closed
            };
            if shown.as_ref().map(|m| m.id) == model.as_ref().map(|m| m.id) {
                return; // the reconnection's "as it is now", or our own rollback seen twice
            }
            view.swapped
                .try_set(model.as_ref().map(|m| api::student_change_message(m, shown.as_ref())));
            swap(model);
        });
        // Another engine chosen: the same student again, on it.
        Effect::new(move |previous: Option<EngineChoice>| {
            let choice = view.engine.get();
            if previous.is_some_and(|previous| previous != choice)
                && let Some(shown) = view.student.try_get_untracked()
            {
                swap(shown);
            }
            choice
        });
        on_cleanup(move || {
            background.try_with_value(|stop| stop.store(true, Ordering::Relaxed));
        });
        view
    }

    /// Runs `model` on the image on screen, then pre-labels the rest of the project in the
    /// background until `stop` is set.
    fn run(self, model: RegisteredModel, view: StudentView, stop: Arc<AtomicBool>) {
        view.state.try_set(PrelabelState::Running);
        let on_screen = model.clone();
        spawn_local(async move {
            let model = on_screen;
            let found = prelabel::prelabel(self.project_id, &model, self.image_id, true).await;
            // Swapped again while it ran: the newer student's answer is the one to show.
            if view.student.try_with_untracked(|s| s.as_ref().map(|m| m.id)) != Some(Some(model.id)) {
                return;
            }
            match found {
                Ok(found) => {
                    let mapped: Vec<ProposalBox> = found
                        .proposals
                        .iter()
                        .filter_map(|p| {
                            let class_id = model.class_map.get(p.class_index as usize).copied().flatten()?;
                            let rect = api::normalize_box(p.bbox.map(f64::from), self.width, self.height).ok()?;
                            Some(ProposalBox {
                                class_id,
                                score: p.score,
                                rect,
                                source: api::BoxSource::Student,
                                box_id: None,
                            })
                        })
                        .collect();
                    let unmapped = found.proposals.len() - mapped.len();
                    self.proposals.try_update(|list| list.extend(mapped));
                    view.state.try_set(PrelabelState::Ready {
                        model_id: model.id,
                        ms: found.inference_ms,
                        source: found.model_source,
                        engine: found.engine,
                        unmapped,
                    });
                }
                Err(message) => {
                    view.state.try_set(PrelabelState::Failed(message));
                }
            }
        });
        // While this tab is open, the worker pre-labels the rest of the project in between.
        prelabel::run_in_background(self.project_id, model, stop);
    }
}
