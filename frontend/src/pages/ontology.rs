//! Editing a project's ontology and settings: its name, its classes (rename, colour, teacher
//! prompt, order, add, remove — saying where a removed class's boxes go) and its split.

use api::{ClassRemoval, ClassSpec, ObjectClass, Project, ProjectPatch, SplitRatios};
use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::SubmitEvent;

use crate::api_client;

/// One editable row.
#[derive(Debug, Clone, PartialEq)]
struct ClassDraft {
    /// Row key within the editor.
    key: u32,
    id: Option<u32>,
    name: RwSignal<String>,
    color: RwSignal<String>,
    prompt: RwSignal<String>,
}

/// What happens to the boxes of a removed class.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    /// Not decided: the server refuses if the class has boxes.
    Undecided,
    MoveTo(u32),
    Delete,
}

/// The class editor.
#[component]
pub fn ClassEditor(project: Project) -> impl IntoView {
    let project_id = project.id;
    let next_key = StoredValue::new(0u32);
    let draft = move |id: Option<u32>, name: String, color: String, prompt: String| {
        next_key.update_value(|k| *k += 1);
        ClassDraft {
            key: next_key.get_value(),
            id,
            name: RwSignal::new(name),
            color: RwSignal::new(color),
            prompt: RwSignal::new(prompt),
        }
    };
    let drafts_of = move |classes: &[ObjectClass]| -> Vec<ClassDraft> {
        classes
            .iter()
            .map(|c| {
                draft(
                    Some(c.id),
                    c.name.clone(),
                    c.color.clone(),
                    c.prompt.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let rows = RwSignal::new(drafts_of(&project.classes));
    let original = StoredValue::new(project.classes.clone());
    let fates = RwSignal::new(Vec::<(u32, Fate)>::new());
    let error = RwSignal::new(None::<String>);
    let saved = RwSignal::new(false);
    let new_names = RwSignal::new(String::new());

    let removed = move || {
        let kept: Vec<Option<u32>> = rows.with(|r| r.iter().map(|d| d.id).collect());
        original.with_value(|o| {
            o.iter()
                .filter(|c| !kept.contains(&Some(c.id)))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let fate_of = move |class_id: u32| {
        fates
            .with(|f| f.iter().find(|(id, _)| *id == class_id).map(|(_, fate)| *fate))
            .unwrap_or(Fate::Undecided)
    };
    let set_fate = move |class_id: u32, fate: Fate| {
        fates.update(|f| {
            f.retain(|(id, _)| *id != class_id);
            f.push((class_id, fate));
        })
    };
    let move_row = move |index: usize, up: bool| {
        rows.update(|r| {
            let other = if up {
                index.checked_sub(1)
            } else {
                Some(index + 1).filter(|i| *i < r.len())
            };
            if let Some(other) = other {
                r.swap(index, other);
            }
        })
    };
    let add = move |event: SubmitEvent| {
        event.prevent_default();
        for spec in api::parse_class_list(&new_names.get_untracked()) {
            let color = api::default_class_color(rows.with_untracked(Vec::len) as u32).to_owned();
            rows.update(|r| r.push(draft(None, spec.name, color, String::new())));
        }
        new_names.set(String::new());
    };
    let save = move |_| {
        let classes: Vec<ClassSpec> = rows.with_untracked(|r| {
            r.iter()
                .map(|d| ClassSpec {
                    id: d.id,
                    name: d.name.get_untracked(),
                    prompt: Some(d.prompt.get_untracked()),
                    color: Some(d.color.get_untracked()),
                })
                .collect()
        });
        if let Err(problem) = api::validate_classes(&classes) {
            error.set(Some(problem.to_string()));
            return;
        }
        let removed_class_boxes: Vec<ClassRemoval> = fates.with_untracked(|f| {
            f.iter()
                .filter_map(|(class_id, fate)| match fate {
                    Fate::Undecided => None,
                    Fate::MoveTo(target) => Some(ClassRemoval {
                        class_id: *class_id,
                        move_to: Some(*target),
                    }),
                    Fate::Delete => Some(ClassRemoval {
                        class_id: *class_id,
                        move_to: None,
                    }),
                })
                .collect()
        });
        let patch = ProjectPatch {
            classes: Some(classes),
            removed_class_boxes,
            ..ProjectPatch::default()
        };
        spawn_local(async move {
            match api_client::update_project(project_id, &patch).await {
                Ok(updated) => {
                    // The server's answer is the new truth: new classes now have ids.
                    rows.set(drafts_of(&updated.classes));
                    original.set_value(updated.classes);
                    fates.set(Vec::new());
                    error.set(None);
                    saved.set(true);
                }
                Err(failure) => {
                    saved.set(false);
                    error.set(Some(failure.message));
                }
            }
        });
    };

    let numbered_rows = move || rows.get().into_iter().enumerate().collect::<Vec<_>>();
    view! {
        <table class="classes">
            <thead><tr><th>"Key"</th><th>"Colour"</th><th>"Class"</th><th>"Teacher prompt"</th><th></th></tr></thead>
            <tbody>
                <For each=numbered_rows key=|(i, d)| (*i, d.key) let:entry>
                    {
                        let (index, row) = entry;
                        let key = row.key;
                        view! {
                            <tr data-class-id=row.id.map(|id| id.to_string()).unwrap_or_default()>
                                <td class="muted">{if index < 9 { (index + 1).to_string() } else { String::new() }}</td>
                                <td><input type="color" class="color-input" aria-label="Colour" bind:value=row.color /></td>
                                <td><input type="text" class="class-name" aria-label="Class name" bind:value=row.name /></td>
                                <td><input type="text" aria-label="Teacher prompt" placeholder="e.g. a red car" bind:value=row.prompt /></td>
                                <td class="row-actions">
                                    <button type="button" title="Move up" on:click=move |_| move_row(index, true)>"↑"</button>
                                    <button type="button" title="Move down" on:click=move |_| move_row(index, false)>"↓"</button>
                                    <button type="button" class="danger" title="Remove class"
                                        on:click=move |_| rows.update(|r| r.retain(|d| d.key != key))>"✕"</button>
                                </td>
                            </tr>
                        }
                    }
                </For>
            </tbody>
        </table>
        {move || {
            let removed = removed();
            (!removed.is_empty()).then(|| view! {
                <div class="removed-classes">
                    {removed.into_iter().map(|class| {
                        let class_id = class.id;
                        let targets = rows.get();
                        view! {
                            <p class="small">
                                {format!("Removing \"{}\" — its boxes: ", class.name)}
                                <select class="fate" on:change=move |ev| {
                                    let value = event_target_value(&ev);
                                    set_fate(class_id, match value.as_str() {
                                        "delete" => Fate::Delete,
                                        "" => Fate::Undecided,
                                        id => id.parse().map(Fate::MoveTo).unwrap_or(Fate::Undecided),
                                    });
                                }>
                                    <option value="" selected=move || fate_of(class_id) == Fate::Undecided>"choose…"</option>
                                    <option value="delete">"delete them"</option>
                                    {targets.into_iter().filter_map(|d| d.id.map(|id| (id, d.name.get_untracked()))).map(|(id, name)| view! {
                                        <option value=id.to_string()>{format!("move to {name}")}</option>
                                    }).collect_view()}
                                </select>
                            </p>
                        }
                    }).collect_view()}
                </div>
            })
        }}
        <form class="inline-form" on:submit=add>
            <label for="add-classes" class="visually-hidden">"Add classes"</label>
            <input id="add-classes" type="text" placeholder="Add classes: truck, bus" autocomplete="off" bind:value=new_names />
            <button type="submit">"Add"</button>
        </form>
        {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
        <div class="form-actions">
            <button id="save-classes" class="primary" on:click=save>"Save classes"</button>
            {move || saved.get().then(|| view! { <span class="ok small">"✓ Saved"</span> })}
        </div>
    }
}

/// Renames the project.
#[component]
pub fn RenameProject(project: Project, on_saved: impl Fn() + Copy + 'static) -> impl IntoView {
    let name = RwSignal::new(project.name.clone());
    let error = RwSignal::new(None::<String>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let patch = ProjectPatch {
            name: Some(name.get_untracked()),
            ..ProjectPatch::default()
        };
        spawn_local(async move {
            match api_client::update_project(project.id, &patch).await {
                Ok(_) => on_saved(),
                Err(failure) => error.set(Some(failure.message)),
            }
        });
    };
    view! {
        <form class="inline-form" on:submit=submit>
            <label for="project-rename" class="visually-hidden">"Project name"</label>
            <input id="project-rename" type="text" bind:value=name />
            <button type="submit">"Rename"</button>
        </form>
        {move || error.get().map(|message| view! { <p class="form-error" role="alert">{message}</p> })}
    }
}

/// Train/val/test percentages and the split seed.
#[component]
pub fn SplitEditor(project: Project) -> impl IntoView {
    let split = project.split;
    let train = RwSignal::new(split.train_pct.to_string());
    let val = RwSignal::new(split.val_pct.to_string());
    let test = RwSignal::new(split.test_pct.to_string());
    let seed = RwSignal::new(project.split_seed.to_string());
    let message = RwSignal::new(None::<Result<String, String>>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let parse = |s: RwSignal<String>| s.get_untracked().trim().parse::<u8>().ok();
        let (Some(train_pct), Some(val_pct), Some(test_pct)) = (parse(train), parse(val), parse(test)) else {
            message.set(Some(Err("Percentages are whole numbers from 0 to 100.".into())));
            return;
        };
        let split = SplitRatios {
            train_pct,
            val_pct,
            test_pct,
        };
        if let Err(problem) = split.validate() {
            message.set(Some(Err(problem.to_string())));
            return;
        }
        let Ok(split_seed) = seed.get_untracked().trim().parse::<u32>() else {
            message.set(Some(Err("The seed is a whole number.".into())));
            return;
        };
        let patch = ProjectPatch {
            split: Some(split),
            split_seed: Some(split_seed),
            ..ProjectPatch::default()
        };
        spawn_local(async move {
            match api_client::update_project(project.id, &patch).await {
                Ok(_) => message.set(Some(Ok("✓ Saved".into()))),
                Err(failure) => message.set(Some(Err(failure.message))),
            }
        });
    };
    view! {
        <form class="split-form" on:submit=submit>
            <label>"Train %"<input type="text" inputmode="numeric" bind:value=train /></label>
            <label>"Val %"<input type="text" inputmode="numeric" bind:value=val /></label>
            <label>"Test %"<input type="text" inputmode="numeric" bind:value=test /></label>
            <label>"Seed"<input type="text" inputmode="numeric" bind:value=seed /></label>
            <button type="submit">"Save split"</button>
        </form>
        <p class="muted small">"Each image's split follows from its id and the seed, so exports are reproducible; imported splits stay fixed."</p>
        {move || message.get().map(|m| match m {
            Ok(text) => view! { <p class="ok small">{text}</p> }.into_any(),
            Err(text) => view! { <p class="form-error small" role="alert">{text}</p> }.into_any(),
        })}
    }
}
