//! `/projects/{pid}/images/{iid}`: the box editor. Every edit is applied on screen at once and
//! queued to the server through [`SyncQueue`]; undo/redo replays edits as new operations, so the
//! server (and anyone else on the image) sees them like any other edit.

mod audit_log;
mod canvas;
mod label_errors;
mod model;
mod prelabel_engine;
mod student;

use api::{ImageBoxes, ImageInfo, ImageStatus, OpKind, Project, Role, StatusChange};
use leptos::ev;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use wasm_bindgen::JsCast;
use web_sys::KeyboardEvent;

use self::audit_log::AuditLog;
use self::canvas::{Canvas, CanvasState, Highlight, ProposalBox, ProposalSources, View};
use self::label_errors::LabelErrorsPanel;
use self::model::{Action, Change, EditBox, History, new_box_id};
use self::prelabel_engine::{EnginePicker, EngineUsed};
use self::student::{PrelabelState, StudentOnImage, StudentView};
use crate::api_client::{self, ApiFailure};
use crate::pages::{LoadError, Loading, id_param, plural};
use crate::prelabel::{self, MIN_THRESHOLD};
use crate::sync::{RefusedEdits, SyncIndicator, SyncQueue};
use api::worker::ModelSource;

/// Editor settings that outlive one image: "keep previous image's boxes" and those boxes.
#[derive(Clone, Copy)]
pub struct EditorSession {
    /// Copy the previous image's boxes onto an unlabeled image when it opens.
    pub keep_previous: RwSignal<bool>,
    /// Boxes of the image last closed.
    pub last_boxes: StoredValue<Vec<EditBox>>,
}

impl EditorSession {
    /// A fresh session (provided once by the app shell).
    pub fn new() -> Self {
        Self {
            keep_previous: RwSignal::new(false),
            last_boxes: StoredValue::new(Vec::new()),
        }
    }
}

#[derive(Clone)]
struct Loaded {
    project: Project,
    image: ImageInfo,
    boxes: ImageBoxes,
    /// The project's active student, whose proposals are shown.
    student: Option<api::RegisteredModel>,
}

async fn load(project_id: Option<i64>, image_id: Option<i64>) -> Result<Loaded, ApiFailure> {
    let (Some(project_id), Some(image_id)) = (project_id, image_id) else {
        return Err(ApiFailure {
            code: "not_found".into(),
            message: "This address does not name an image.".into(),
        });
    };
    let project = api_client::get_project(project_id).await?;
    let image = api_client::get_image(image_id).await?;
    if image.project_id != project_id {
        return Err(ApiFailure {
            code: "not_found".into(),
            message: format!("Image {image_id} is not in this project."),
        });
    }
    let boxes = api_client::get_boxes(image_id).await?;
    let student = crate::prelabel::active_student(project_id).await;
    Ok(Loaded {
        project,
        image,
        boxes,
        student,
    })
}

/// The editor route.
#[component]
pub fn LabelingView() -> impl IntoView {
    let project_id = id_param("pid");
    let image_id = id_param("iid");
    let data = LocalResource::new(move || load(project_id(), image_id()));
    view! {
        {move || match data.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok(loaded)) => view! { <Editor loaded /> }.into_any(),
        }}
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Next,
    Previous,
}

#[component]
fn Editor(loaded: Loaded) -> impl IntoView {
    let Loaded {
        project,
        image,
        boxes: server,
        student,
    } = loaded;
    let sync = expect_context::<SyncQueue>();
    let session = expect_context::<EditorSession>();
    let (project_id, image_id) = (project.id, image.id);

    // What the server has, plus this browser's edits it has not confirmed yet; the teacher's
    // boxes are proposals until someone accepts them.
    let pending = sync.pending_for(image_id);
    let live_since = server.seq;
    // Who last wrote each box: a live change to a box this person drew is pointed out.
    let authors = StoredValue::new(
        server
            .boxes
            .iter()
            .map(|b| (b.id.clone(), b.author.clone()))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let (mut initial, teacher_proposals) = split_teacher_boxes(server.boxes, &pending);
    let mut initial_negative = server.negative;
    for pending in pending {
        if let Some(op) = pending.op {
            replay(&mut initial, &op);
        }
        if let Some(flag) = pending.negative {
            initial_negative = flag;
        }
    }
    let boxes = RwSignal::new(initial);
    let proposals = RwSignal::new(teacher_proposals);
    let sources = RwSignal::new(ProposalSources::Both);
    let negative = RwSignal::new(initial_negative);
    let status = RwSignal::new(server.status);
    let review_comment = RwSignal::new(image.review_comment.clone());
    let selected = RwSignal::new(None::<String>);
    let current_class = RwSignal::new(project.classes.first().map_or(0, |c| c.id));
    let classes = StoredValue::new(project.classes.clone());
    let history = StoredValue::new(History::default());
    let view_state = RwSignal::new(View {
        zoom: 1.0,
        pan_x: 0.0,
        pan_y: 0.0,
    });
    let space_held = RwSignal::new(false);
    let viewport = NodeRef::<leptos::html::Div>::new();
    let notice = RwSignal::new(None::<String>);
    let reject_text = RwSignal::new(String::new());
    // What this person may do here (the server checks it again): viewers look, reviewers also
    // approve and reject.
    let me = expect_context::<crate::session::Auth>().user().map(|u| u.username);
    let myself = StoredValue::new(me.clone());
    let role = project.role.unwrap_or(Role::Owner);
    let can_edit = role.allows(Role::Annotator);
    let can_review = role.allows(Role::Reviewer);
    let view_only = move || {
        notice.set(Some(format!(
            "View only: your role in this project is {role}, so changes are not saved."
        )));
    };
    // Who else holds this image's lease (DESIGN: opening an image to edit takes a lease): this
    // screen is read-only until the person takes over and edits alongside them. `None` while
    // this screen may edit.
    let held_by = RwSignal::new(None::<String>);
    let leased_elsewhere = move || {
        let holder = held_by.get_untracked();
        if let Some(holder) = &holder {
            notice.set(Some(format!(
                "{holder} is editing this image: take over to edit it too."
            )));
        }
        holder.is_some()
    };

    // Apply an action on screen and queue it for the server.
    let commit = move |action: Action, record: bool| {
        if action.is_empty() {
            return;
        }
        if !can_edit {
            view_only();
            return;
        }
        if leased_elsewhere() {
            return;
        }
        for change in &action {
            let id = change
                .after
                .as_ref()
                .or(change.before.as_ref())
                .map(|b| b.id.clone())
                .unwrap_or_default();
            let known = boxes
                .with_untracked(|list| list.iter().find(|b| b.id == id).map(|b| b.revision))
                .unwrap_or(0);
            if let Some(op) = model::to_op(change, known) {
                sync.push(image_id, op);
            }
            authors.update_value(|a| {
                a.insert(id.clone(), myself.get_value());
            });
        }
        boxes.update(|list| action.iter().for_each(|change| model::apply(list, change)));
        if action.iter().any(|c| c.after.is_some()) {
            negative.set(false);
        }
        status.update(|s| *s = s.after_edit());
        if record {
            history.update_value(|h| h.record(action));
        }
    };
    let on_action = Callback::new(move |action: Action| commit(action, true));

    // The server's answers (only those after this editor opened): revisions for the next edits,
    // and "you overwrote someone" notices.
    let opened_at = sync.answers_so_far();
    Effect::new(move |_| {
        let Some(response) = sync.applied_since(image_id, opened_at) else {
            return;
        };
        boxes.update(|list| {
            for applied in &response.applied {
                if let (Some(saved), Some(local)) = (&applied.bbox, list.iter_mut().find(|b| b.id == applied.box_id)) {
                    local.revision = saved.revision;
                }
            }
        });
        if let Some(author) = response.applied.iter().find_map(|a| a.overwrote.clone()) {
            notice.set(Some(format!("Your edit replaced a newer change by {author}.")));
        }
        status.set(response.status);
        negative.set(response.negative);
    });
    // A refused edit: show the server's truth again.
    Effect::new(move |_| {
        if sync.refused_since(image_id, opened_at) {
            spawn_local(async move {
                if let Ok(fresh) = api_client::get_boxes(image_id).await {
                    let (people, teacher) = split_teacher_boxes(fresh.boxes, &sync.pending_for(image_id));
                    boxes.set(people);
                    proposals.update(|list| {
                        list.retain(|p| p.source != api::BoxSource::Teacher);
                        list.extend(teacher);
                    });
                    negative.set(fresh.negative);
                    status.set(fresh.status);
                    history.set_value(History::default());
                }
            });
        }
    });

    // Live: other people's edits of this image and review decisions appear as they happen; who
    // else has it open is shown in the bar.
    let others_here = RwSignal::new(Vec::<String>::new());
    let (changes, tick_changes) = signal(0u64);
    // The live channel's word on the active student (`None` until it has spoken).
    let (published_student, publish_student) = signal(None::<Option<api::RegisteredModel>>);
    let my_connection = StoredValue::new(None::<u64>);
    let live_requests = {
        let me = me.clone();
        api_client::follow_live_while_mounted(project_id, image_id, live_since, move |event| match event {
            api::LiveEvent::Hello { connection } => my_connection.set_value(Some(connection)),
            api::LiveEvent::Box {
                image_id: on,
                op,
                box_id,
                bbox,
                author,
                ..
            } if on == image_id => {
                tick_changes.update(|n| *n += 1);
                // A newer edit of this person's own is on its way: theirs wins on arrival.
                let mine_pending = sync.pending_for(image_id).iter().any(|p| {
                    p.op.as_ref()
                        .is_some_and(|o| o.bbox.id.as_deref() == Some(box_id.as_str()))
                });
                if mine_pending {
                    return;
                }
                let drawn_by = authors.with_value(|a| a.get(&box_id).cloned().flatten());
                if drawn_by.is_some() && drawn_by == me && author != me {
                    let who = author.clone().unwrap_or_else(|| "someone".into());
                    let what = if op == OpKind::Delete { "deleted" } else { "changed" };
                    notice.set(Some(format!("{who} {what} a box you drew.")));
                }
                authors.update_value(|a| {
                    a.insert(box_id.clone(), author.clone());
                });
                apply_live_box(boxes, proposals, &box_id, bbox);
                if op == OpKind::Delete && selected.get_untracked().as_deref() == Some(box_id.as_str()) {
                    selected.set(None);
                }
            }
            api::LiveEvent::Status {
                image_id: on,
                status: now,
                comment,
                author,
                ..
            } if on == image_id => {
                tick_changes.update(|n| *n += 1);
                status.set(now);
                if now == ImageStatus::Rejected {
                    review_comment.set(comment);
                } else if now == ImageStatus::Approved {
                    review_comment.set(None);
                }
                if author != me {
                    let who = author.unwrap_or_else(|| "someone".into());
                    notice.set(Some(format!("{who} marked this image {}.", now.label().to_lowercase())));
                }
            }
            api::LiveEvent::Student { model } => publish_student.set(Some(model)),
            api::LiveEvent::Presence { people } => {
                let mine = my_connection.get_value();
                let on_this: Vec<&api::Presence> = people.iter().filter(|p| p.image_id == Some(image_id)).collect();
                let mut names: Vec<String> = on_this
                    .iter()
                    .filter(|p| Some(&p.username) != me.as_ref())
                    .map(|p| p.username.clone())
                    .collect();
                names.dedup();
                others_here.set(names);
                let i_edit = on_this.iter().any(|p| p.editing && Some(p.connection) == mine);
                let holder = on_this.iter().find(|p| p.editing && Some(p.connection) != mine);
                held_by.set(holder.filter(|_| !i_edit).map(|p| {
                    if Some(&p.username) == me.as_ref() {
                        "Another tab of yours".to_owned()
                    } else {
                        p.username.clone()
                    }
                }));
            }
            _ => {}
        })
    };
    let live_requests = StoredValue::new(live_requests);
    let take_over = move || {
        live_requests.with_value(|requests| {
            let _ = requests.unbounded_send(api::LiveRequest::TakeOver);
        });
        // Editable at once: the server's answer confirms it a moment later.
        held_by.set(None);
        notice.set(None);
    };

    // "Keep previous image's boxes" for video-like sequences.
    if session.keep_previous.get_untracked() && boxes.with_untracked(Vec::is_empty) && !initial_negative {
        let copied: Action = session
            .last_boxes
            .get_value()
            .into_iter()
            .filter_map(|b| {
                let rect = api::normalize_box(b.rect, image.width, image.height).ok()?;
                Some(Change {
                    before: None,
                    after: Some(EditBox {
                        id: new_box_id(),
                        rect,
                        revision: 0,
                        ..b
                    }),
                })
            })
            .collect();
        commit(copied, true);
    }
    on_cleanup(move || {
        if let Some(list) = boxes.try_get_untracked() {
            session.last_boxes.set_value(list);
        }
    });

    let fit = move || {
        if let Some(element) = viewport.get_untracked() {
            let rect = element.get_bounding_client_rect();
            view_state.set(View::fit(
                f64::from(image.width),
                f64::from(image.height),
                rect.width(),
                rect.height(),
            ));
        }
    };
    request_animation_frame(fit);
    // The window may change size (or finish laying out) after the first frame.
    let resize = window_event_listener(ev::resize, move |_| fit());
    on_cleanup(move || resize.remove());

    // The student's proposals join the teacher's: shown dashed, accepted into human boxes
    // through the normal edits. A newly active student replaces them without a reload.
    let threshold = RwSignal::new(prelabel::DEFAULT_THRESHOLD);
    let StudentView {
        student,
        state: prelabel_state,
        swapped,
        engine,
    } = StudentOnImage {
        project_id,
        image_id,
        width: image.width,
        height: image.height,
        proposals,
    }
    .start(student, published_student);
    // Accepts (or rejects) proposals by index: accepted ones become human boxes, one undo step.
    let decide = move |indices: Vec<usize>, accept: bool| {
        if !can_edit {
            view_only();
            return;
        }
        if leased_elsewhere() {
            return;
        }
        let chosen: Vec<ProposalBox> =
            proposals.with_untracked(|list| indices.iter().filter_map(|i| list.get(*i).cloned()).collect());
        proposals.update(|list| {
            let mut index = 0;
            list.retain(|_| {
                index += 1;
                !indices.contains(&(index - 1))
            });
        });
        if accept {
            // An accepted teacher proposal keeps its stored id: the server makes that box the
            // person's instead of adding a second one.
            let action: Action = chosen
                .into_iter()
                .map(|p| Change {
                    before: None,
                    after: Some(EditBox {
                        id: p.box_id.unwrap_or_else(new_box_id),
                        class_id: p.class_id,
                        rect: p.rect,
                        source: api::BoxSource::Human,
                        score: None,
                        revision: 0,
                    }),
                })
                .collect();
            commit(action, true);
        } else {
            // A dismissed teacher proposal is deleted on the server (a student's just vanishes).
            for (id, p) in chosen.iter().filter_map(|p| p.box_id.clone().map(|id| (id, p))) {
                let [x0, y0, x1, y1] = p.rect;
                sync.push(
                    image_id,
                    api::BoxOp {
                        op: OpKind::Delete,
                        bbox: api::BoxInput {
                            id: Some(id),
                            class_id: p.class_id,
                            x0,
                            y0,
                            x1,
                            y1,
                        },
                        base_rev: None,
                    },
                );
            }
        }
    };
    let accept_all = move || {
        let (level, shown) = (threshold.get_untracked(), sources.get_untracked());
        let above: Vec<usize> = proposals.with_untracked(|list| {
            list.iter()
                .enumerate()
                .filter(|(_, p)| p.shown(level, shown))
                .map(|(i, _)| i)
                .collect()
        });
        decide(above, true);
    };
    let on_proposal = Callback::new(move |(index, accept): (usize, bool)| decide(vec![index], accept));

    let navigate = use_navigate();
    let has_student = move || student.with(Option::is_some);
    // "Next" is the shared queue's: the next image nobody else holds — for a reviewer who
    // opened a submitted image, the next submitted one; otherwise the top of the ranking picked
    // in the "Label next" panel (a random order of this person's own without a student).
    // "Previous" walks the gallery.
    let reviewing = can_review && server.status == ImageStatus::Submitted;
    let go = move |direction: Direction| {
        let navigate = navigate.clone();
        spawn_local(async move {
            let open = |id: i64| navigate(&format!("/projects/{project_id}/images/{id}"), Default::default());
            if direction == Direction::Next {
                match crate::pages::work::next_image_or_why(project_id, reviewing, Some(image_id)).await {
                    Ok(id) => open(id),
                    Err(why) => notice.set(Some(why)),
                }
                return;
            }
            match api_client::list_images(project_id, None, None, None, None, Some(image_id), 1).await {
                Ok(page) => match page.images.into_iter().next() {
                    Some(other) => open(other.id),
                    None => notice.set(Some("This is the first image.".into())),
                },
                Err(failure) => notice.set(Some(failure.message)),
            }
        });
    };
    let go = StoredValue::new(go);

    let set_status = move |change: StatusChange, then_next: bool| {
        if !can_edit {
            view_only();
            return;
        }
        spawn_local(async move {
            match api_client::change_status(image_id, &change).await {
                Ok(info) => {
                    status.set(info.status);
                    review_comment.set(info.review_comment);
                    notice.set(None);
                    if then_next {
                        go.with_value(|go| go(Direction::Next));
                    }
                }
                Err(failure) => notice.set(Some(failure.message)),
            }
        });
    };
    let toggle_negative = move || {
        if !can_edit {
            view_only();
            return;
        }
        if leased_elsewhere() {
            return;
        }
        let wanted = !negative.get_untracked();
        if wanted && !boxes.with_untracked(Vec::is_empty) {
            notice.set(Some("Delete the boxes first: an image with boxes has objects.".into()));
            return;
        }
        negative.set(wanted);
        status.update(|s| *s = s.after_edit());
        sync.push_negative(image_id, wanted);
    };
    let change_selected_class = move |class_id: u32| {
        current_class.set(class_id);
        let Some(id) = selected.get_untracked() else {
            return;
        };
        let Some(before) = boxes.with_untracked(|b| b.iter().find(|b| b.id == id).cloned()) else {
            return;
        };
        if before.class_id != class_id {
            let after = EditBox {
                class_id,
                ..before.clone()
            };
            commit(
                vec![Change {
                    before: Some(before),
                    after: Some(after),
                }],
                true,
            );
        }
    };
    let delete_selected = move || {
        let Some(id) = selected.get_untracked() else {
            return;
        };
        let Some(before) = boxes.with_untracked(|b| b.iter().find(|b| b.id == id).cloned()) else {
            return;
        };
        selected.set(None);
        commit(
            vec![Change {
                before: Some(before),
                after: None,
            }],
            true,
        );
    };
    // Undo and redo replay this person's own steps; a box someone else changed since is left
    // as they made it, and the person is told by whom.
    let replay = move |replay: Option<model::Replay>| {
        let Some(model::Replay { action, left_alone }) = replay else {
            return;
        };
        if let Some(id) = left_alone.first() {
            let who = authors
                .with_value(|a| a.get(id).cloned().flatten())
                .filter(|who| Some(who) != myself.get_value().as_ref())
                .unwrap_or_else(|| "someone else".into());
            let boxes = if left_alone.len() == 1 { "a box" } else { "boxes" };
            notice.set(Some(format!("Left {boxes} as {who} changed it after you.")));
        }
        selected.set(None);
        commit(action, false);
    };
    let undo = move || {
        let now = boxes.get_untracked();
        replay(history.try_update_value(|h| h.undo(&now)).flatten());
    };
    let redo = move || {
        let now = boxes.get_untracked();
        replay(history.try_update_value(|h| h.redo(&now)).flatten());
    };

    let keydown = window_event_listener(ev::keydown, move |event: KeyboardEvent| {
        if typing_in_a_field(&event) {
            return;
        }
        let key = event.key();
        let command = event.ctrl_key() || event.meta_key();
        let handled = match key.as_str() {
            "z" | "Z" if command && event.shift_key() => {
                redo();
                true
            }
            "z" | "Z" if command => {
                undo();
                true
            }
            "y" if command => {
                redo();
                true
            }
            "Enter" if command => {
                set_status(
                    StatusChange {
                        status: ImageStatus::Submitted,
                        comment: None,
                    },
                    true,
                );
                true
            }
            _ if command || event.alt_key() => false,
            "Delete" | "Backspace" => {
                delete_selected();
                true
            }
            "Enter" => {
                accept_all();
                true
            }
            "Escape" => {
                selected.set(None);
                true
            }
            "d" | "D" | "ArrowRight" => {
                go.with_value(|go| go(Direction::Next));
                true
            }
            "a" | "A" | "ArrowLeft" => {
                go.with_value(|go| go(Direction::Previous));
                true
            }
            "f" | "F" => {
                fit();
                true
            }
            "+" | "=" => {
                view_state.update(|v| *v = zoom_centre(*v, 1.25, viewport));
                true
            }
            "-" => {
                view_state.update(|v| *v = zoom_centre(*v, 0.8, viewport));
                true
            }
            "n" | "N" => {
                toggle_negative();
                true
            }
            " " => {
                space_held.set(true);
                true
            }
            digit if digit.len() == 1 && ('1'..='9').contains(&digit.chars().next().unwrap_or('0')) => {
                let index = digit.parse::<usize>().unwrap_or(1) - 1;
                if let Some(class_id) = classes.with_value(|c| c.get(index).map(|c| c.id)) {
                    change_selected_class(class_id);
                }
                true
            }
            _ => false,
        };
        if handled {
            event.prevent_default();
        }
    });
    let keyup = window_event_listener(ev::keyup, move |event: KeyboardEvent| {
        if event.key() == " " {
            space_held.set(false);
        }
    });
    on_cleanup(move || {
        keydown.remove();
        keyup.remove();
    });

    let back = format!("/projects/{project_id}");
    let file_name = image.file_name.clone();
    let selected_box = move || {
        let id = selected.get()?;
        boxes.with(|b| b.iter().find(|b| b.id == id).cloned())
    };
    let highlights = RwSignal::new(Vec::<Highlight>::new());
    let approved = Signal::derive(move || status.get() == ImageStatus::Approved);
    let canvas = CanvasState {
        image_id,
        width: image.width,
        height: image.height,
        boxes,
        selected,
        current_class,
        classes,
        view: view_state,
        space_held,
        on_action,
        viewport,
        on_image_loaded: Callback::new(move |()| fit()),
        proposals,
        threshold,
        sources,
        on_proposal,
        highlights,
    };
    let shown_proposals = move || {
        let (level, shown) = (threshold.get(), sources.get());
        proposals.with(|list| list.iter().filter(|p| p.shown(level, shown)).count())
    };
    let teacher_count =
        move || proposals.with(|list| list.iter().filter(|p| p.source == api::BoxSource::Teacher).count());

    view! {
        <div class="editor" data-image-id=image_id.to_string()>
            <header class="editor-bar">
                <a href=back class="small">{format!("← {}", project.name)}</a>
                <span class="file-name" title=file_name.clone()>{file_name.clone()}</span>
                <span class="muted small">{format!("{} × {}", image.width, image.height)}</span>
                <span class=move || format!("badge status-{}", status.get().as_str()) data-status=move || status.get().as_str()>
                    {move || status.get().label()}
                </span>
                <SyncIndicator />
                {move || {
                    let names = others_here.get();
                    (!names.is_empty()).then(|| view! {
                        <span class="presence small" data-people=names.join(",") title="Also on this image">
                            {format!("Also here: {}", names.join(", "))}
                        </span>
                    })
                }}
                <span class="spacer"></span>
                <button on:click=move |_| go.with_value(|go| go(Direction::Previous)) title="Previous image (A)">"‹ Prev"</button>
                <button on:click=move |_| go.with_value(|go| go(Direction::Next)) title=move || if reviewing { "Next image waiting for review (D)" } else if has_student() { "Most uncertain unlabeled image nobody else holds (D)" } else { "Next unlabeled image nobody else holds (D)" }>"Next ›"</button>
                <button on:click=move |_| fit() title="Fit to screen (F)">"Fit"</button>
                <button class:active=move || negative.get() on:click=move |_| toggle_negative() title="No objects here (N)">
                    {move || if negative.get() { "✓ No objects" } else { "No objects" }}
                </button>
                {(!can_edit).then(|| view! { <span class="badge view-only" title="Your role in this project">{format!("View only ({role})")}</span> })}
                {move || (can_edit).then(|| held_by.get()).flatten().map(|holder| view! {
                    <span class="lease small" data-holder=holder.clone()>
                        {format!("{holder} is editing — view only ")}
                        <button class="small take-over" on:click=move |_| take_over()>"Take over"</button>
                    </span>
                })}
                {move || match status.get() {
                    _ if !can_edit => ().into_any(),
                    ImageStatus::Submitted if !can_review => view! {
                        <span class="muted small">"Waiting for a reviewer"</span>
                    }.into_any(),
                    ImageStatus::Submitted => view! {
                        <button class="primary" on:click=move |_| set_status(StatusChange { status: ImageStatus::Approved, comment: None }, true)>"Approve"</button>
                        <input type="text" class="reject-comment" placeholder="What needs fixing?" bind:value=reject_text />
                        <button class="danger" on:click=move |_| set_status(StatusChange { status: ImageStatus::Rejected, comment: Some(reject_text.get_untracked()) }, false)>"Reject"</button>
                    }.into_any(),
                    ImageStatus::Approved | ImageStatus::Rejected => view! {
                        <button on:click=move |_| set_status(StatusChange { status: ImageStatus::InProgress, comment: None }, false)>"Reopen"</button>
                    }.into_any(),
                    _ => view! {
                        <button class="primary" on:click=move |_| set_status(StatusChange { status: ImageStatus::Submitted, comment: None }, true) title="Submit (Ctrl+Enter)">"Submit"</button>
                    }.into_any(),
                }}
            </header>
            <RefusedEdits />
            {move || review_comment.get().map(|comment| view! { <p class="review-comment" role="note">{format!("Reviewer: {comment}")}</p> })}
            {move || notice.get().map(|message| view! { <p class="notice" role="status">{message}</p> })}
            <div class="editor-body">
                <aside class="palette card" aria-label="Classes">
                    <h2>"Classes"</h2>
                    <ol class="palette-list">
                        {project.classes.iter().enumerate().map(|(index, class)| {
                            let class_id = class.id;
                            view! {
                                <li>
                                    <button class="class-button" class:current=move || current_class.get() == class_id
                                        data-class-id=class_id.to_string() on:click=move |_| change_selected_class(class_id)>
                                        <kbd>{if index < 9 { (index + 1).to_string() } else { String::new() }}</kbd>
                                        <span class="swatch" style:background-color=class.color.clone()></span>
                                        {class.name.clone()}
                                    </button>
                                </li>
                            }
                        }).collect_view()}
                    </ol>
                    {move || selected_box().map(|b| view! {
                        <section class="selection">
                            <h2>"Selected box"</h2>
                            <label for="box-class">"Class"</label>
                            <select id="box-class" on:change=move |ev| {
                                if let Ok(class_id) = event_target_value(&ev).parse() { change_selected_class(class_id) }
                            }>
                                {classes.get_value().into_iter().map(|c| view! {
                                    <option value=c.id.to_string() selected=c.id == b.class_id>{c.name}</option>
                                }).collect_view()}
                            </select>
                            <button class="danger" on:click=move |_| delete_selected()>"Delete (Del)"</button>
                        </section>
                    })}
                    <section class="prelabels" aria-label="Pre-labels"
                        data-state=move || match prelabel_state.get() {
                            PrelabelState::NoModel => "none",
                            PrelabelState::Running => "running",
                            PrelabelState::Ready { .. } => "ready",
                            PrelabelState::Failed(_) => "failed",
                        }
                        data-model-source=move || match prelabel_state.get() {
                            PrelabelState::Ready { source, .. } => format!("{source:?}").to_lowercase(),
                            _ => String::new(),
                        }
                        data-model-id=move || match prelabel_state.get() {
                            PrelabelState::Ready { model_id, .. } => model_id.to_string(),
                            _ => String::new(),
                        }>
                        <h2>"Pre-labels"</h2>
                        {move || swapped.get().map(|message| view! {
                            <p class="small student-swapped" role="status">{message}</p>
                        })}
                        {move || match prelabel_state.get() {
                            PrelabelState::NoModel => view! {
                                <p class="muted small">"No student model yet: upload or train one on the "
                                    <a href=format!("/projects/{project_id}/models")>"Models"</a>" page."</p>
                            }.into_any(),
                            PrelabelState::Running => view! { <p class="muted small">"The student is looking…"</p> }.into_any(),
                            PrelabelState::Failed(message) => view! {
                                <p class="error small" role="alert">{format!("Pre-labels unavailable: {message}")}</p>
                            }.into_any(),
                            PrelabelState::Ready { ms, source, engine: used, unmapped, .. } => view! {
                                <p class="small">
                                    {move || student.with(|s| s.as_ref().map_or_else(|| "Student".to_owned(), |m| format!("Student v{}", m.version)))}
                                    ": "<span class="muted">{format!("{ms:.0} ms")}</span>
                                    <EngineUsed engine=used choice=engine.get_untracked() />
                                    {(source == ModelSource::Network).then(|| view! { <span class="muted">", model downloaded"</span> })}
                                </p>
                                {(unmapped > 0).then(|| view! {
                                    <p class="muted small">{format!("{} of classes not mapped to this project ignored", plural(unmapped as u64, "proposal"))}</p>
                                })}
                            }.into_any(),
                        }}
                        {move || student.with(|s| s.is_some()).then(|| view! { <EnginePicker engine /> })}
                        {move || (teacher_count() > 0).then(|| view! {
                            <p class="small teacher-proposals">{format!("Teacher: {}", plural(teacher_count() as u64, "proposal"))}</p>
                        })}
                        <Show when=move || proposals.with(|list| !list.is_empty())>
                            <p class="small shown-proposals">{move || format!("{} shown", plural(shown_proposals() as u64, "proposal"))}</p>
                            <label for="proposal-sources" class="small">"Show"</label>
                            <select id="proposal-sources" on:change=move |ev| {
                                if let Some(choice) = ProposalSources::parse(&event_target_value(&ev)) { sources.set(choice) }
                            }>
                                {ProposalSources::ALL.into_iter().map(|choice| view! {
                                    <option value=choice.as_str() selected=move || sources.get() == choice>{match choice {
                                        ProposalSources::Both => "Teacher and student",
                                        ProposalSources::Teacher => "Teacher only",
                                        ProposalSources::Student => "Student only",
                                    }}</option>
                                }).collect_view()}
                            </select>
                            <label for="proposal-threshold" class="small">
                                {move || format!("Confidence ≥ {:.2}", threshold.get())}
                            </label>
                            <input id="proposal-threshold" type="range" min=MIN_THRESHOLD.to_string() max="0.95" step="0.05"
                                prop:value=move || threshold.get().to_string()
                                on:input=move |ev| if let Ok(v) = event_target_value(&ev).parse() { threshold.set(v) } />
                            <button on:click=move |_| accept_all() disabled=move || shown_proposals() == 0
                                title="Accept every proposal shown (Enter)">"Accept all (Enter)"</button>
                            <p class="muted small">"Click a dashed box to accept it, right-click to dismiss it."</p>
                        </Show>
                    </section>
                    <AuditLog image_id classes changes />
                    <LabelErrorsPanel image_id approved width=image.width height=image.height boxes classes
                        highlights on_fix=on_action />
                    <label class="toggle">
                        <input type="checkbox" prop:checked=move || session.keep_previous.get()
                            on:change=move |ev| session.keep_previous.set(event_target_checked(&ev)) />
                        "Keep previous image's boxes"
                    </label>
                    <p class="muted small">{move || plural(boxes.with(Vec::len) as u64, "box")}</p>
                    <details class="shortcuts">
                        <summary>"Shortcuts"</summary>
                        <p class="small">"Drag: draw · 1–9: class · Del: delete · Ctrl+Z / Ctrl+Shift+Z: undo / redo · A / D: previous / next · wheel, + / −: zoom · F: fit · space-drag: pan · N: no objects · Enter: accept proposals · Ctrl+Enter: submit"</p>
                    </details>
                </aside>
                <Canvas state=canvas />
            </div>
        </div>
    }
}

/// A class's name for the editor's panels ("class 7" for one deleted since).
fn class_name(classes: StoredValue<Vec<api::ObjectClass>>, id: u32) -> String {
    classes.with_value(|list| {
        list.iter()
            .find(|c| c.id == id)
            .map_or_else(|| format!("class {id}"), |c| c.name.clone())
    })
}

/// Splits the server's boxes into the person-made ones (edited in the editor) and the teacher's
/// proposals; a teacher box that a queued edit already accepted or dismissed is no proposal.
fn split_teacher_boxes(
    boxes: Vec<api::BoundingBox>,
    pending: &[crate::sync::PendingOp],
) -> (Vec<EditBox>, Vec<ProposalBox>) {
    let decided = |id: &str| {
        pending
            .iter()
            .any(|p| p.op.as_ref().is_some_and(|op| op.bbox.id.as_deref() == Some(id)))
    };
    let (teacher, people): (Vec<_>, Vec<_>) = boxes.into_iter().partition(|b| b.source == api::BoxSource::Teacher);
    let proposals = teacher
        .into_iter()
        .filter(|b| !decided(&b.id))
        .map(|b| ProposalBox {
            class_id: b.class_id,
            score: b.confidence.unwrap_or(0.0),
            rect: [b.x0, b.y0, b.x1, b.y1],
            source: api::BoxSource::Teacher,
            box_id: Some(b.id),
        })
        .collect();
    (people.into_iter().map(EditBox::from).collect(), proposals)
}

/// Someone else's change of a box, as the live channel tells it: a person's box is set or
/// removed, a teacher's proposal likewise among the proposals. A box this screen already has at
/// that revision or later is left alone.
fn apply_live_box(
    boxes: RwSignal<Vec<EditBox>>,
    proposals: RwSignal<Vec<ProposalBox>>,
    box_id: &str,
    bbox: Option<api::BoundingBox>,
) {
    let Some(bbox) = bbox else {
        boxes.update(|list| list.retain(|b| b.id != box_id));
        proposals.update(|list| list.retain(|p| p.box_id.as_deref() != Some(box_id)));
        return;
    };
    if bbox.source == api::BoxSource::Teacher {
        proposals.update(|list| {
            list.retain(|p| p.box_id.as_deref() != Some(box_id));
            list.push(ProposalBox {
                class_id: bbox.class_id,
                score: bbox.confidence.unwrap_or(0.0),
                rect: [bbox.x0, bbox.y0, bbox.x1, bbox.y1],
                source: api::BoxSource::Teacher,
                box_id: Some(bbox.id.clone()),
            });
        });
        return;
    }
    // A proposal someone accepted is a person's box now.
    proposals.update(|list| list.retain(|p| p.box_id.as_deref() != Some(box_id)));
    let known = boxes.with_untracked(|list| list.iter().find(|b| b.id == box_id).map(|b| b.revision));
    if known.is_some_and(|revision| revision >= bbox.revision) {
        return;
    }
    let fresh = EditBox::from(bbox);
    boxes.update(|list| match list.iter_mut().find(|b| b.id == box_id) {
        Some(existing) => *existing = fresh,
        None => list.push(fresh),
    });
}

/// Replays a queued operation onto boxes loaded from the server.
fn replay(boxes: &mut Vec<EditBox>, op: &api::BoxOp) {
    let Some(id) = op.bbox.id.clone() else { return };
    match op.op {
        OpKind::Delete => boxes.retain(|b| b.id != id),
        OpKind::Create | OpKind::Update => {
            let b = &op.bbox;
            let after = EditBox {
                id,
                class_id: b.class_id,
                rect: [b.x0, b.y0, b.x1, b.y1],
                source: api::BoxSource::Human,
                score: None,
                revision: 0,
            };
            model::apply(
                boxes,
                &Change {
                    before: None,
                    after: Some(after),
                },
            );
        }
    }
}

fn zoom_centre(view: View, factor: f64, viewport: NodeRef<leptos::html::Div>) -> View {
    match viewport.get_untracked() {
        Some(element) => {
            let rect = element.get_bounding_client_rect();
            view.zoom_at(factor, rect.width() / 2.0, rect.height() / 2.0)
        }
        None => view,
    }
}

fn typing_in_a_field(event: &KeyboardEvent) -> bool {
    event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        .is_some_and(|element| matches!(element.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
}
