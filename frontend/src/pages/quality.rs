//! `/projects/{pid}/quality`: how good each model version is on the approved images — mAP,
//! per-class AP / precision / recall, precision–recall curves, the confusion matrix, and how far
//! students agree with teachers. The server computes the figures (`train`, Ultralytics'
//! definitions); when a model or an approved image is new, it evaluates first and this page
//! follows that job and reloads when it ends.

use api::evaluation::CONFUSION_CONFIDENCE;
use api::{Agreement, ClassEvaluation, Job, ModelEvaluation, ObjectClass, Project, ProjectEvaluation, Split};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::{LoadError, Loading, id_param, plural};
use crate::api_client::{self, ApiFailure};

/// The quality route.
#[component]
pub fn QualityPage() -> impl IntoView {
    let project_id = id_param("pid");
    let split = RwSignal::new(None::<Split>);
    let version = RwSignal::new(0u32);
    let data = LocalResource::new(move || {
        version.track();
        let split = split.get();
        async move {
            let project_id = project_id().ok_or_else(|| ApiFailure {
                code: "not_found".into(),
                message: "This address does not name a project.".into(),
            })?;
            let project = api_client::get_project(project_id).await?;
            let evaluation = api_client::evaluation(project_id, split).await?;
            Ok::<_, ApiFailure>((project, evaluation))
        }
    });
    // The evaluation job, followed over its event stream; the figures reload when it ends.
    let job = RwSignal::new(None::<Job>);
    let followed = StoredValue::new(None::<i64>);
    Effect::new(move |_| {
        let Some(Ok((_, evaluation))) = data.get() else {
            return;
        };
        let Some(running) = evaluation.job else {
            job.set(None);
            return;
        };
        if followed.get_value() == Some(running.id) {
            return;
        }
        followed.set_value(Some(running.id));
        job.set(Some(running.clone()));
        spawn_local(async move {
            let _ = api_client::follow_job(running.id, move |fresh| job.set(Some(fresh))).await;
            version.update(|v| *v += 1);
        });
    });
    view! {
        {move || match data.get() {
            None => view! { <Loading /> }.into_any(),
            Some(Err(failure)) => view! { <LoadError failure /> }.into_any(),
            Some(Ok((project, evaluation))) => view! {
                <nav class="crumbs" aria-label="Breadcrumb">
                    <a href="/">"Projects"</a>" / "<a href=format!("/projects/{}", project.id)>{project.name.clone()}</a>" / "
                </nav>
                <section class="page-head">
                    <h1>"Quality"</h1>
                    <label for="quality-split" class="small">"Approved images of"</label>
                    <select id="quality-split" on:change=move |ev| split.set(Split::parse(&event_target_value(&ev)))>
                        <option value="all" selected=move || split.get().is_none()>"every split"</option>
                        {[Split::Train, Split::Val, Split::Test].into_iter().map(|s| view! {
                            <option value=s.as_str() selected=move || split.get() == Some(s)>{s.as_str()}</option>
                        }).collect_view()}
                    </select>
                </section>
                {move || job.get().filter(|j| !j.state.is_final()).map(|j| view! {
                    <p class="small job" id="evaluation-job" data-job-state=j.state.as_str()>
                        {format!("Evaluating new models and images: {} / {}", j.done, j.total)}
                    </p>
                })}
                <Figures project evaluation />
            }.into_any(),
        }}
    }
}

#[component]
fn Figures(project: Project, evaluation: ProjectEvaluation) -> impl IntoView {
    let project_id = project.id;
    if evaluation.approved_images == 0 {
        return view! {
            <p class="muted empty-quality">"No approved images yet. The figures compare each model with the boxes reviewers approved: approve some images first."</p>
        }
        .into_any();
    }
    if evaluation.models.is_empty() {
        return view! {
            <p class="muted empty-quality">"No models yet: upload a teacher or a student on the "
                <a href=format!("/projects/{project_id}/models")>"Models"</a>" page."</p>
        }
        .into_any();
    }
    let approved = evaluation.approved_images;
    let classes = StoredValue::new(project.classes.clone());
    let agreement = evaluation.agreement.clone();
    view! {
        <p class="muted small">{format!(
            "Against the human boxes of {}. mAP, AP, precision and recall as Ultralytics' val computes them; precision and recall at the confidence where the mean F1 peaks.",
            plural(approved, "approved image")
        )}</p>
        {(!agreement.is_empty()).then(|| view! { <AgreementTable agreement models=evaluation.models.clone() /> })}
        {evaluation.models.into_iter().map(|model| view! {
            <ModelCard model approved classes=classes.get_value() />
        }).collect_view()}
    }
    .into_any()
}

#[component]
fn ModelCard(model: ModelEvaluation, approved: u64, classes: Vec<ObjectClass>) -> impl IntoView {
    let name_of = |id: u32| {
        classes
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| format!("class {id}"), |c| c.name.clone())
    };
    let color_of = |id: u32| {
        classes
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| "#888".into(), |c| c.color.clone())
    };
    let seen = if model.evaluated_images < approved {
        format!("{} of {} evaluated so far", model.evaluated_images, approved)
    } else {
        plural(model.evaluated_images, "image")
    };
    let unreadable = (model.unreadable_images > 0)
        .then(|| format!(" · {} could not be read", plural(model.unreadable_images, "image")));
    let curves: Vec<(String, String, Vec<f32>)> = model
        .classes
        .iter()
        .filter(|c| !c.pr_curve.is_empty())
        .map(|c| (name_of(c.class_id), color_of(c.class_id), c.pr_curve.clone()))
        .collect();
    let labels: Vec<String> = model
        .classes
        .iter()
        .map(|c| name_of(c.class_id))
        .chain(["background".to_owned()])
        .collect();
    view! {
        <section class="card quality-model" data-model-id=model.model_id.to_string() data-map50=format!("{:.4}", model.map50)>
            <h2>{model.file_name.clone()}" "<span class="muted small">{format!("{} · {seen}", model.role.as_str())}{unreadable}</span></h2>
            <table class="classes metrics">
                <thead><tr><th>"mAP50"</th><th>"mAP50-95"</th><th>"Precision"</th><th>"Recall"</th><th>"at confidence"</th></tr></thead>
                <tbody><tr>
                    <td class="map50">{format!("{:.3}", model.map50)}</td>
                    <td class="map50-95">{format!("{:.3}", model.map50_95)}</td>
                    <td>{format!("{:.3}", model.precision)}</td>
                    <td>{format!("{:.3}", model.recall)}</td>
                    <td>{format!("{:.2}", model.best_f1_confidence)}</td>
                </tr></tbody>
            </table>
            <h3>"Per class"</h3>
            <table class="classes per-class">
                <thead><tr><th>"Class"</th><th>"Boxes"</th><th>"AP50"</th><th>"AP50-95"</th><th>"Precision"</th><th>"Recall"</th></tr></thead>
                <tbody>
                    {model.classes.iter().map(|c| view! { <ClassRow class=c.clone() name=name_of(c.class_id) /> }).collect_view()}
                </tbody>
            </table>
            <div class="quality-plots">
                <figure>
                    <PrCurves curves />
                    <figcaption class="small muted">"Precision–recall at IoU 0.5, per class"</figcaption>
                </figure>
                <figure>
                    <Confusion counts=model.confusion.clone() labels />
                    <figcaption class="small muted">{format!(
                        "Confusion matrix: rows what the model said (confidence above {CONFUSION_CONFIDENCE}), columns what people labeled"
                    )}</figcaption>
                </figure>
            </div>
        </section>
    }
}

#[component]
fn ClassRow(class: ClassEvaluation, name: String) -> impl IntoView {
    let figure = |value: Option<f64>| value.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
    view! {
        <tr data-class-id=class.class_id.to_string()>
            <td>{name}</td>
            <td>{class.truths}</td>
            <td class="ap50">{figure(class.ap50)}</td>
            <td>{figure(class.ap50_95)}</td>
            <td>{figure(class.precision)}</td>
            <td>{figure(class.recall)}</td>
        </tr>
    }
}

/// Plot size in SVG units; the page scales it.
const PLOT: f64 = 300.0;
const MARGIN: f64 = 36.0;

/// One polyline per class over recall 0 … 1, with axes, ticks and a legend.
#[component]
fn PrCurves(curves: Vec<(String, String, Vec<f32>)>) -> impl IntoView {
    let x = |recall: f64| MARGIN + recall * PLOT;
    let y = |precision: f64| MARGIN / 2.0 + (1.0 - precision) * PLOT;
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    let size = PLOT + MARGIN * 1.5;
    view! {
        <svg class="pr-curve" viewBox=format!("0 0 {} {}", size + 110.0, size) role="img"
            aria-label="Precision–recall curves">
            <rect class="plot-area" x=x(0.0) y=y(1.0) width=PLOT height=PLOT />
            {ticks.into_iter().map(|t| view! {
                <line class="grid" x1=x(t) y1=y(0.0) x2=x(t) y2=y(1.0) />
                <line class="grid" x1=x(0.0) y1=y(t) x2=x(1.0) y2=y(t) />
                <text class="tick" x=x(t) y=y(0.0) + 14.0 text-anchor="middle">{format!("{t}")}</text>
                <text class="tick" x=x(0.0) - 5.0 y=y(t) + 4.0 text-anchor="end">{format!("{t}")}</text>
            }).collect_view()}
            <text class="axis" x=x(0.5) y=size - 2.0 text-anchor="middle">"Recall"</text>
            <text class="axis" x="10" y=y(0.5) text-anchor="middle" transform=format!("rotate(-90 10 {})", y(0.5))>"Precision"</text>
            {curves.into_iter().enumerate().map(|(i, (name, color, points))| {
                let last = (points.len().max(2) - 1) as f64;
                let path: Vec<String> = points
                    .iter()
                    .enumerate()
                    .map(|(k, p)| format!("{:.1},{:.1}", x(k as f64 / last), y(f64::from(*p))))
                    .collect();
                let legend_y = y(1.0) + 14.0 + i as f64 * 16.0;
                view! {
                    <polyline class="curve" data-class=name.clone() points=path.join(" ") stroke=color.clone() fill="none" />
                    <line x1=x(1.0) + 10.0 y1=legend_y - 4.0 x2=x(1.0) + 24.0 y2=legend_y - 4.0 stroke=color stroke-width="3" />
                    <text class="legend" x=x(1.0) + 28.0 y=legend_y>{name}</text>
                }
            }).collect_view()}
        </svg>
    }
}

/// The matrix as a table, each cell shaded by its share of its column (what people labeled).
#[component]
fn Confusion(counts: Vec<Vec<u32>>, labels: Vec<String>) -> impl IntoView {
    let background = labels.len().saturating_sub(1);
    let column_totals: Vec<u32> = (0..labels.len())
        .map(|col| counts.iter().map(|row| row.get(col).copied().unwrap_or(0)).sum())
        .collect();
    view! {
        <table class="confusion">
            <thead>
                <tr><th class="corner">"said ╲ labeled"</th>{labels.iter().map(|l| view! { <th>{l.clone()}</th> }).collect_view()}</tr>
            </thead>
            <tbody>
                {counts.iter().enumerate().map(|(r, row)| view! {
                    <tr>
                        <th>{labels.get(r).cloned().unwrap_or_default()}</th>
                        {row.iter().enumerate().map(|(c, &n)| {
                            let share = if column_totals[c] > 0 { f64::from(n) / f64::from(column_totals[c]) } else { 0.0 };
                            view! {
                                <td class:diagonal=r == c && c != background data-row=r.to_string() data-col=c.to_string()
                                    style:background-color=format!("rgba(90, 140, 255, {:.2})", share * 0.8)>
                                    {n}
                                </td>
                            }
                        }).collect_view()}
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn AgreementTable(agreement: Vec<Agreement>, models: Vec<ModelEvaluation>) -> impl IntoView {
    let name = move |id: i64| {
        models
            .iter()
            .find(|m| m.model_id == id)
            .map_or_else(|| format!("model {id}"), |m| m.file_name.clone())
    };
    view! {
        <section class="card" aria-labelledby="agreement-title">
            <h2 id="agreement-title">"Teacher and student agreement"</h2>
            <table class="classes agreement">
                <thead><tr><th>"Teacher"</th><th>"Student"</th><th>"Images"</th><th>"Boxes (teacher / student)"</th><th>"Same object and class"</th><th>"F1"</th></tr></thead>
                <tbody>
                    {agreement.iter().map(|a| view! {
                        <tr>
                            <td>{name(a.teacher_id)}</td>
                            <td>{name(a.student_id)}</td>
                            <td>{a.images}</td>
                            <td>{format!("{} / {}", a.teacher_boxes, a.student_boxes)}</td>
                            <td>{a.agreed}</td>
                            <td class="agreement-f1">{format!("{:.3}", a.f1)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <p class="muted small">{format!("Boxes above confidence {CONFUSION_CONFIDENCE}, paired one to one at IoU above 0.45.")}</p>
        </section>
    }
}
