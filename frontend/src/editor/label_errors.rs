//! The editor's "possible label errors" panel, on approved images: where a model disagrees with
//! the human boxes (the server's `label-errors`), each outlined on the canvas with its reason.
//! "Fix" applies the model's view as an ordinary edit (add the missed box, take its class, delete
//! the spurious box — undoable, saved through the queue like any edit); "Label is right" is
//! stored on the server so the same suspicion is not raised again for this model version.

use api::{ConfirmLabel, ImageLabelErrors, ObjectClass, Suspicion, SuspicionKind};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::canvas::Highlight;
use super::model::{Action, Change, EditBox, new_box_id};
use crate::api_client;

/// The panel; renders nothing unless the image is approved and a model has something to say.
#[component]
pub fn LabelErrorsPanel(
    image_id: i64,
    approved: Signal<bool>,
    width: u32,
    height: u32,
    boxes: RwSignal<Vec<EditBox>>,
    classes: StoredValue<Vec<ObjectClass>>,
    highlights: RwSignal<Vec<Highlight>>,
    on_fix: Callback<Action>,
) -> impl IntoView {
    let found = RwSignal::new(None::<ImageLabelErrors>);
    let failure = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        if !approved.get() {
            found.set(None);
            return;
        }
        spawn_local(async move {
            match api_client::label_errors(image_id).await {
                Ok(answer) => {
                    found.try_set(Some(answer));
                }
                // No model registered: nothing to check against, nothing to say.
                Err(error) if error.code == "no_model" => {}
                Err(error) => {
                    failure.try_set(Some(error.message));
                }
            }
        });
    });
    // The outlines follow the open suspicions (and the accused boxes as they are now).
    Effect::new(move |_| {
        let outlines: Vec<Highlight> = found.with(|f| {
            f.iter()
                .flat_map(|f| f.suspicions.iter())
                .filter_map(|s| {
                    let rect = match (s.model_box, &s.box_id) {
                        (Some(corners), _) => corners.map(f64::from),
                        (None, Some(id)) => boxes.with(|list| list.iter().find(|b| &b.id == id).map(|b| b.rect))?,
                        (None, None) => return None,
                    };
                    Some(Highlight {
                        rect,
                        kind: s.kind,
                        key: s.key.clone(),
                    })
                })
                .collect()
        });
        highlights.set(outlines);
    });
    let settle = move |key: &str| {
        found.update(|f| {
            if let Some(f) = f {
                f.suspicions.retain(|s| s.key != key);
            }
        });
    };
    let fix = move |suspicion: Suspicion| {
        let Some(action) = fix_action(&suspicion, width, height, &boxes.get_untracked()) else {
            failure.set(Some("That box has changed since; nothing to fix.".into()));
            return;
        };
        on_fix.run(action);
        settle(&suspicion.key);
    };
    let confirm = move |suspicion: Suspicion| {
        let Some(model_id) = found.with_untracked(|f| f.as_ref().map(|f| f.model_id)) else {
            return;
        };
        spawn_local(async move {
            let body = ConfirmLabel {
                model_id,
                key: suspicion.key.clone(),
            };
            match api_client::confirm_label(image_id, &body).await {
                Ok(answer) => {
                    found.try_set(Some(answer));
                }
                Err(error) => {
                    failure.try_set(Some(error.message));
                }
            }
        });
    };
    let class_name = move |id: u32| super::class_name(classes, id);
    view! {
        {move || found.get().filter(|f| !f.suspicions.is_empty()).map(|f| view! {
            <section class="label-errors" aria-label="Possible label errors">
                <h2>"Possible label errors"</h2>
                <ul>
                    {f.suspicions.into_iter().map(|s| {
                        let fix_label = match s.kind {
                            SuspicionKind::Missed => format!("Add the {}", s.class_id.map(class_name).unwrap_or_default()),
                            SuspicionKind::WrongClass => format!("Make it {}", s.class_id.map(class_name).unwrap_or_default()),
                            SuspicionKind::Spurious => "Delete the box".to_owned(),
                        };
                        let (to_fix, to_confirm) = (s.clone(), s.clone());
                        view! {
                            <li data-suspicion=s.kind.as_str() data-key=s.key.clone()>
                                <p class="small">{s.reason.clone()}</p>
                                <button class="small fix-label" on:click=move |_| fix(to_fix.clone())>{fix_label}</button>
                                <button class="small confirm-label" on:click=move |_| confirm(to_confirm.clone())>"Label is right"</button>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        })}
        {move || failure.get().map(|m| view! { <p class="form-error small" role="alert">{m}</p> })}
    }
}

/// The edit that makes the labels agree with the model on this suspicion; `None` when the
/// accused box is no longer there.
fn fix_action(suspicion: &Suspicion, width: u32, height: u32, boxes: &[EditBox]) -> Option<Action> {
    let accused = || {
        let id = suspicion.box_id.as_deref()?;
        boxes.iter().find(|b| b.id == id).cloned()
    };
    let change = match suspicion.kind {
        SuspicionKind::Missed => {
            let rect = api::normalize_box(suspicion.model_box?.map(f64::from), width, height).ok()?;
            Change {
                before: None,
                after: Some(EditBox {
                    id: new_box_id(),
                    class_id: suspicion.class_id?,
                    rect,
                    source: api::BoxSource::Human,
                    score: None,
                    revision: 0,
                }),
            }
        }
        SuspicionKind::WrongClass => {
            let before = accused()?;
            let after = EditBox {
                class_id: suspicion.class_id?,
                ..before.clone()
            };
            Change {
                before: Some(before),
                after: Some(after),
            }
        }
        SuspicionKind::Spurious => Change {
            before: Some(accused()?),
            after: None,
        },
    };
    Some(vec![change])
}
