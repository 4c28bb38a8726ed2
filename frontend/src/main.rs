//! Distillery's browser app: Leptos, client-side rendered, talking to `/api`.
//!
//! Invariant (wasm rules): no threads, no filesystem, no `std::time::Instant`, and nothing that
//! blocks the UI thread for more than a frame — inference belongs in a Web Worker.

mod api_client;
mod app;
mod charts;
mod editor;
mod inference;
mod pages;
mod prelabel;
mod session;
mod sync;
mod upload;

fn main() {
    console_error_panic_hook::set_once();
    inference::expose_to_scripts();
    leptos::mount::mount_to_body(app::App);
}
