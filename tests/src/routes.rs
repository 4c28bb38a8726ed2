//! The API's routes as the server's sources declare them (`.route("…", get(…).post(…))` in
//! `backend/src`), so tests that must cover every route cover tomorrow's too.

use std::path::Path;

use reqwest::Method;

/// One route: method and path under `/api`, e.g. (`POST`, `/projects/{pid}/jobs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path under `/api`, as declared: `/images/{iid}/ops`.
    pub path: String,
}

/// Every `.route(PATH, METHODS)` call in the Rust files below `dir`.
fn routes_in(dir: &Path, routes: &mut Vec<Route>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            routes_in(&path, routes)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            parse_routes(&std::fs::read_to_string(&path)?, routes);
        }
    }
    Ok(())
}

fn parse_routes(source: &str, routes: &mut Vec<Route>) {
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let Some(path) = rest.trim_start().strip_prefix('"').and_then(|s| s.split('"').next()) else {
            continue;
        };
        // The method router: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let methods = &rest[..end];
        for (name, method) in [
            ("get", Method::GET),
            ("post", Method::POST),
            ("put", Method::PUT),
            ("patch", Method::PATCH),
            ("delete", Method::DELETE),
        ] {
            let called = methods.match_indices(&format!("{name}(")).any(|(i, _)| {
                let before = &methods[..i];
                before.ends_with("routing::")
                    || !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
            });
            if called {
                routes.push(Route {
                    method,
                    path: path.to_owned(),
                });
            }
        }
    }
}

/// Every route of the server, checked to include the ones everyone knows (or the parser found
/// nothing to test).
pub fn declared() -> anyhow::Result<Vec<Route>> {
    let mut routes = Vec::new();
    routes_in(&crate::workspace_root().join("backend/src"), &mut routes)?;
    for known in [
        "/projects/{pid}/images",
        "/images/{iid}/ops",
        "/jobs/{jid}/cancel",
        "/health",
        "/login",
    ] {
        anyhow::ensure!(
            routes.iter().any(|r| r.path == known),
            "{known} not found in {routes:?}"
        );
    }
    anyhow::ensure!(routes.len() >= 40, "{} routes: {routes:?}", routes.len());
    Ok(routes)
}
