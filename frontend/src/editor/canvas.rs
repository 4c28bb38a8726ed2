//! The drawing surface: the image (an `<img>`, so the browser applies EXIF orientation exactly
//! as the server measured it) under an SVG whose viewBox is the upright image in pixels. Each
//! box is a `<rect>` carrying `data-box-id`, `data-class-id`, `data-source` and `data-score`.
//!
//! Pointer gestures: drag on the image draws, drag a box moves it, drag a corner handle resizes,
//! space-drag or middle-drag pans, the wheel zooms around the cursor.

use api::ObjectClass;
use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{PointerEvent, WheelEvent};

use super::model::{Action, Change, EditBox, new_box_id};

/// Boxes smaller than this on either side (image pixels) are treated as a stray click.
const MIN_BOX_PX: f64 = 2.0;

/// Zoom and pan of the canvas inside its viewport.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Screen pixels per image pixel.
    pub zoom: f64,
    /// Offset of the image's top-left corner in the viewport, screen pixels.
    pub pan_x: f64,
    /// See `pan_x`.
    pub pan_y: f64,
}

impl View {
    /// The whole image, centred, as large as the viewport allows.
    pub fn fit(image_w: f64, image_h: f64, viewport_w: f64, viewport_h: f64) -> View {
        let zoom = ((viewport_w / image_w).min(viewport_h / image_h) * 0.98).max(0.01);
        View {
            zoom,
            pan_x: (viewport_w - image_w * zoom) / 2.0,
            pan_y: (viewport_h - image_h * zoom) / 2.0,
        }
    }

    /// Zooms by `factor` keeping the viewport point `(sx, sy)` fixed.
    pub fn zoom_at(self, factor: f64, sx: f64, sy: f64) -> View {
        let zoom = (self.zoom * factor).clamp(0.02, 40.0);
        let (ix, iy) = ((sx - self.pan_x) / self.zoom, (sy - self.pan_y) / self.zoom);
        View {
            zoom,
            pan_x: sx - ix * zoom,
            pan_y: sy - iy * zoom,
        }
    }
}

#[derive(Debug, Clone)]
enum Drag {
    Draw { start: (f64, f64) },
    Move { original: EditBox, grab: (f64, f64) },
    Resize { original: EditBox, corner: Corner },
    Pan { start_client: (f64, f64), start_view: View },
}

#[derive(Debug, Clone, Copy)]
enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "nw" => Some(Self::TopLeft),
            "ne" => Some(Self::TopRight),
            "sw" => Some(Self::BottomLeft),
            "se" => Some(Self::BottomRight),
            _ => None,
        }
    }
}

/// What the canvas needs from the editor.
#[derive(Clone, Copy)]
pub struct CanvasState {
    pub image_id: i64,
    pub width: u32,
    pub height: u32,
    pub boxes: RwSignal<Vec<EditBox>>,
    pub selected: RwSignal<Option<String>>,
    pub current_class: RwSignal<u32>,
    pub classes: StoredValue<Vec<ObjectClass>>,
    pub view: RwSignal<View>,
    pub space_held: RwSignal<bool>,
    /// Called with each finished gesture (draw, move, resize).
    pub on_action: Callback<Action>,
    /// The viewport element, for fitting.
    pub viewport: NodeRef<html::Div>,
    /// Called when the image has loaded (the layout is final by then).
    pub on_image_loaded: Callback<()>,
    /// The models' proposals, drawn dashed; those below `threshold`, or from a source not
    /// picked in `sources`, are hidden.
    pub proposals: RwSignal<Vec<ProposalBox>>,
    pub threshold: RwSignal<f32>,
    pub sources: RwSignal<ProposalSources>,
    /// Called with (index in `proposals`, accepted?) when one is clicked or dismissed.
    pub on_proposal: Callback<(usize, bool)>,
    /// Suspected label errors, outlined over everything else.
    pub highlights: RwSignal<Vec<Highlight>>,
}

/// Where a suspected label error is: the accused human box, or the model's box a person missed.
#[derive(Debug, Clone, PartialEq)]
pub struct Highlight {
    pub rect: [f64; 4],
    pub kind: api::SuspicionKind,
    /// The suspicion's key, so the panel's entry and its outline can be matched.
    pub key: String,
}

/// A model's proposal, mapped to a project class, in image pixels: the student's (found in
/// this browser) or the teacher's (stored on the server, with its box id).
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalBox {
    pub class_id: u32,
    pub score: f32,
    pub rect: [f64; 4],
    /// `Teacher` or `Student`.
    pub source: api::BoxSource,
    /// The stored box a teacher proposal is (accepting makes it the person's, dismissing deletes it).
    pub box_id: Option<String>,
}

impl ProposalBox {
    /// Whether it is shown at this confidence level with these sources.
    pub fn shown(&self, level: f32, sources: ProposalSources) -> bool {
        self.score >= level && sources.includes(self.source)
    }
}

/// Which models' proposals the editor shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalSources {
    Both,
    Teacher,
    Student,
}

impl ProposalSources {
    /// Every choice, as the picker lists them.
    pub const ALL: [ProposalSources; 3] = [Self::Both, Self::Teacher, Self::Student];

    /// The picker's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Teacher => "teacher",
            Self::Student => "student",
        }
    }

    /// The choice named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn includes(self, source: api::BoxSource) -> bool {
        match self {
            Self::Both => true,
            Self::Teacher => source == api::BoxSource::Teacher,
            Self::Student => source == api::BoxSource::Student,
        }
    }
}

/// The canvas component.
#[component]
pub fn Canvas(state: CanvasState) -> impl IntoView {
    let CanvasState {
        image_id,
        width,
        height,
        boxes,
        selected,
        current_class,
        classes,
        view,
        space_held,
        on_action,
        viewport,
        on_image_loaded,
        proposals,
        threshold,
        sources,
        on_proposal,
        highlights,
    } = state;
    let (w, h) = (f64::from(width), f64::from(height));
    let drag = StoredValue::new(None::<Drag>);
    let preview = RwSignal::new(None::<[f64; 4]>);
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();

    // Client coordinates → image pixels, through the SVG's on-screen rectangle.
    let to_image = move |event: &PointerEvent| -> Option<(f64, f64)> {
        let svg: web_sys::Element = svg_ref.get_untracked()?.unchecked_into();
        let rect = svg.get_bounding_client_rect();
        if rect.width() <= 0.0 || rect.height() <= 0.0 {
            return None;
        }
        let x = (f64::from(event.client_x()) - rect.left()) / rect.width() * w;
        let y = (f64::from(event.client_y()) - rect.top()) / rect.height() * h;
        Some((x, y))
    };
    let color_of = move |class_id: u32| {
        classes
            .with_value(|c| c.iter().find(|c| c.id == class_id).map(|c| c.color.clone()))
            .unwrap_or_else(|| "#cccccc".into())
    };

    let on_pointer_down = move |event: PointerEvent| {
        let target: Option<web_sys::Element> = event.target().and_then(|t| t.dyn_into().ok());
        let attribute = |name: &str| target.as_ref().and_then(|t| t.get_attribute(name));
        if event.button() == 1 || space_held.get_untracked() {
            event.prevent_default();
            drag.set_value(Some(Drag::Pan {
                start_client: (f64::from(event.client_x()), f64::from(event.client_y())),
                start_view: view.get_untracked(),
            }));
        } else if event.button() != 0 {
            return;
        } else if let Some(index) = attribute("data-proposal").and_then(|i| i.parse().ok()) {
            event.prevent_default();
            on_proposal.run((index, true));
            return;
        } else if let Some(corner) = attribute("data-handle").as_deref().and_then(Corner::parse) {
            let Some(id) = selected.get_untracked() else {
                return;
            };
            let Some(original) = boxes.with_untracked(|b| b.iter().find(|b| b.id == id).cloned()) else {
                return;
            };
            drag.set_value(Some(Drag::Resize { original, corner }));
        } else if let Some(id) = attribute("data-box-id") {
            let Some(point) = to_image(&event) else {
                return;
            };
            let Some(original) = boxes.with_untracked(|b| b.iter().find(|b| b.id == id).cloned()) else {
                return;
            };
            selected.set(Some(id));
            drag.set_value(Some(Drag::Move { original, grab: point }));
        } else {
            let Some(point) = to_image(&event) else {
                return;
            };
            selected.set(None);
            drag.set_value(Some(Drag::Draw { start: point }));
        }
        if let Some(element) = viewport.get_untracked() {
            let _ = element.set_pointer_capture(event.pointer_id());
        }
    };

    let on_pointer_move = move |event: PointerEvent| {
        let Some(current) = drag.get_value() else {
            return;
        };
        match current {
            Drag::Pan {
                start_client,
                start_view,
            } => {
                view.set(View {
                    pan_x: start_view.pan_x + f64::from(event.client_x()) - start_client.0,
                    pan_y: start_view.pan_y + f64::from(event.client_y()) - start_client.1,
                    ..start_view
                });
            }
            Drag::Draw { start } => {
                if let Some((x, y)) = to_image(&event) {
                    preview.set(Some(api::clip_box([start.0, start.1, x, y], width, height)));
                }
            }
            Drag::Move { original, grab } => {
                if let Some((x, y)) = to_image(&event) {
                    let [x0, y0, x1, y1] = original.rect;
                    let (bw, bh) = (x1 - x0, y1 - y0);
                    let nx = (x0 + x - grab.0).clamp(0.0, w - bw);
                    let ny = (y0 + y - grab.1).clamp(0.0, h - bh);
                    set_rect(boxes, &original.id, [nx, ny, nx + bw, ny + bh]);
                }
            }
            Drag::Resize { original, corner } => {
                if let Some((x, y)) = to_image(&event) {
                    let [x0, y0, x1, y1] = original.rect;
                    let rect = match corner {
                        Corner::TopLeft => [x, y, x1, y1],
                        Corner::TopRight => [x0, y, x, y1],
                        Corner::BottomLeft => [x, y0, x1, y],
                        Corner::BottomRight => [x0, y0, x, y],
                    };
                    set_rect(boxes, &original.id, api::clip_box(rect, width, height));
                }
            }
        }
    };

    let on_pointer_up = move |_event: PointerEvent| {
        let Some(finished) = drag.get_value() else {
            return;
        };
        drag.set_value(None);
        match finished {
            Drag::Draw { .. } => {
                let Some(rect) = preview.get_untracked() else {
                    return;
                };
                preview.set(None);
                if rect[2] - rect[0] < MIN_BOX_PX || rect[3] - rect[1] < MIN_BOX_PX {
                    return;
                }
                let created = EditBox {
                    id: new_box_id(),
                    class_id: current_class.get_untracked(),
                    rect,
                    source: api::BoxSource::Human,
                    score: None,
                    revision: 0,
                };
                selected.set(Some(created.id.clone()));
                on_action.run(vec![Change {
                    before: None,
                    after: Some(created),
                }]);
            }
            Drag::Move { original, .. } | Drag::Resize { original, .. } => {
                let after = boxes.with_untracked(|b| b.iter().find(|b| b.id == original.id).cloned());
                if let Some(after) = after
                    && after.rect != original.rect
                {
                    let rect = after.rect;
                    // Too small after a resize: put it back rather than keep a sliver.
                    if rect[2] - rect[0] < MIN_BOX_PX || rect[3] - rect[1] < MIN_BOX_PX {
                        set_rect(boxes, &original.id, original.rect);
                        return;
                    }
                    on_action.run(vec![Change {
                        before: Some(original),
                        after: Some(after),
                    }]);
                }
            }
            Drag::Pan { .. } => {}
        }
    };

    let on_wheel = move |event: WheelEvent| {
        event.prevent_default();
        let Some(element) = viewport.get_untracked() else {
            return;
        };
        let rect = element.get_bounding_client_rect();
        let factor = (-event.delta_y() / 500.0).exp();
        let (sx, sy) = (
            f64::from(event.client_x()) - rect.left(),
            f64::from(event.client_y()) - rect.top(),
        );
        view.update(|v| *v = v.zoom_at(factor, sx, sy));
    };

    let handles = move || {
        let id = selected.get()?;
        let b = boxes.with(|b| b.iter().find(|b| b.id == id).cloned())?;
        let [x0, y0, x1, y1] = b.rect;
        let size = 9.0 / view.get().zoom;
        Some(
            [("nw", x0, y0), ("ne", x1, y0), ("sw", x0, y1), ("se", x1, y1)]
                .into_iter()
                .map(|(name, x, y)| {
                    view! {
                        <rect class=format!("handle handle-{name}") data-handle=name
                            x=x - size / 2.0 y=y - size / 2.0 width=size height=size />
                    }
                })
                .collect_view(),
        )
    };

    view! {
        <div class="viewport" node_ref=viewport class:panning=move || space_held.get()
            on:pointerdown=on_pointer_down on:pointermove=on_pointer_move on:pointerup=on_pointer_up
            on:pointercancel=on_pointer_up on:wheel=on_wheel>
            <div class="canvas" style:width=move || format!("{}px", w * view.get().zoom)
                style:height=move || format!("{}px", h * view.get().zoom)
                style:transform=move || { let v = view.get(); format!("translate({}px, {}px)", v.pan_x, v.pan_y) }>
                <img class="canvas-image" src=format!("/api/images/{image_id}/file") alt="" draggable="false"
                    on:load=move |_| on_image_loaded.run(()) />
                <svg node_ref=svg_ref class="overlay" viewBox=format!("0 0 {width} {height}") preserveAspectRatio="none">
                    <For each=move || boxes.get() key=|b| (b.id.clone(), b.class_id, b.rect.map(f64::to_bits)) let:b>
                        {
                            let [x0, y0, x1, y1] = b.rect;
                            let id = b.id.clone();
                            let is_selected = move || selected.get().as_deref() == Some(id.as_str());
                            view! {
                                <rect class="box" class:selected=is_selected
                                    data-box-id=b.id.clone() data-class-id=b.class_id.to_string()
                                    data-source=b.source.as_str()
                                    data-score=b.score.map(|s| format!("{s:.3}")).unwrap_or_default()
                                    x=x0 y=y0 width=x1 - x0 height=y1 - y0
                                    stroke=color_of(b.class_id) fill=color_of(b.class_id) />
                            }
                        }
                    </For>
                    {move || {
                        let (level, shown) = (threshold.get(), sources.get());
                        proposals.get().into_iter().enumerate().filter(|(_, p)| p.shown(level, shown)).map(|(index, p)| {
                            let [x0, y0, x1, y1] = p.rect;
                            view! {
                                <rect class="box proposal" data-proposal=index.to_string()
                                    data-class-id=p.class_id.to_string() data-source=p.source.as_str()
                                    data-score=format!("{:.3}", p.score)
                                    x=x0 y=y0 width=x1 - x0 height=y1 - y0 stroke=color_of(p.class_id)
                                    on:contextmenu=move |event: web_sys::MouseEvent| {
                                        event.prevent_default();
                                        on_proposal.run((index, false));
                                    }>
                                    <title>{format!("{:.0}% — click to accept, right-click to dismiss", p.score * 100.0)}</title>
                                </rect>
                            }
                        }).collect_view()
                    }}
                    {move || highlights.get().into_iter().map(|h| {
                        let [x0, y0, x1, y1] = h.rect;
                        view! {
                            <rect class="suspicion" data-suspicion=h.kind.as_str() data-key=h.key
                                x=x0 y=y0 width=x1 - x0 height=y1 - y0 />
                        }
                    }).collect_view()}
                    {move || preview.get().map(|[x0, y0, x1, y1]| view! {
                        <rect class="box drawing" x=x0 y=y0 width=x1 - x0 height=y1 - y0
                            stroke=color_of(current_class.get()) fill="none" />
                    })}
                    {handles}
                </svg>
            </div>
        </div>
    }
}

fn set_rect(boxes: RwSignal<Vec<EditBox>>, id: &str, rect: [f64; 4]) {
    boxes.update(|list| {
        if let Some(b) = list.iter_mut().find(|b| b.id == id) {
            b.rect = rect;
        }
    });
}
