//! Headless Chromium driven over WebDriver (chromedriver + fantoccini).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use fantoccini::actions::{InputSource, KeyAction, KeyActions, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long to wait for something to appear on a page.
pub const UI_TIMEOUT: Duration = Duration::from_secs(20);

/// A browser session. Call [`Browser::quit`] at the end; dropping it kills chromedriver and any
/// Chromium left on its profile folder, so a failing test leaves no browser running either.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    profile: TempDir,
}

/// A modifier held while a key is pressed.
#[derive(Debug, Clone, Copy)]
pub enum Modifier {
    /// Ctrl.
    Control,
    /// Shift.
    Shift,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let chromedriver = tool("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = tool("CHROMIUM", "/usr/bin/chromium");
        let port = free_port()?;
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (run the tests with `cargo xtask test`)",
                    chromedriver.display()
                )
            })?;
        let profile = tempfile::tempdir().context("cannot create a browser profile folder")?;
        let webdriver_url = format!("http://127.0.0.1:{port}");
        wait_until_ready(&webdriver_url).await?;

        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            // WebGPU on Chromium's software adapter (SwiftShader), so the worker's GPU path runs;
            // `--disable-gpu` would take the adapter away.
            "--enable-unsafe-webgpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let prefs = serde_json::json!({
            "download.default_directory": downloads,
            "download.prompt_for_download": false,
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args, "prefs": prefs }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver_url)
            .await
            .context("cannot open a Chromium session through chromedriver")?;
        Ok(Browser {
            client,
            driver,
            profile,
        })
    }

    /// Signs this browser in as the studio's admin (the sign-in form itself is exercised by
    /// `sign_in_in_browser`).
    pub async fn sign_in(&self, studio: &crate::Studio) -> anyhow::Result<()> {
        self.sign_in_as(studio, crate::accounts::ADMIN, crate::accounts::ADMIN_PASSWORD)
            .await
    }

    /// Signs this browser in: `POST /api/login` from a page of the studio's origin, so the
    /// browser keeps the session cookie as it would after the form (WebDriver cannot set an
    /// HttpOnly cookie on an IP address).
    pub async fn sign_in_as(&self, studio: &crate::Studio, username: &str, password: &str) -> anyhow::Result<()> {
        self.client.goto(&studio.api("/api/health")).await?;
        let status = self
            .client
            .execute_async(
                "const [username, password, done] = arguments;
                 fetch('/api/login', {method: 'POST', headers: {'content-type': 'application/json'},
                                      body: JSON.stringify({username, password})})
                   .then(r => done(r.status), e => done(String(e)));",
                vec![username.into(), password.into()],
            )
            .await?;
        anyhow::ensure!(status == 200, "signing in as {username} in the browser: {status}");
        Ok(())
    }

    /// Waits for the first element matching `css`.
    pub async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element matches {css}"))
    }

    /// Waits for the first element matching `css` and returns its text.
    pub async fn text_of(&self, css: &str) -> anyhow::Result<String> {
        let element = self
            .client
            .wait()
            .at_most(UI_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no element matches {css}"))?;
        Ok(element.text().await?)
    }

    /// Waits until some element matching `css` has text containing `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + UI_TIMEOUT;
        loop {
            for element in self.client.find_all(Locator::Css(css)).await? {
                if element.text().await.unwrap_or_default().contains(needle) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no {css} showed {needle:?} within {UI_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where downloads land.
    pub fn download_dir(&self) -> PathBuf {
        self.profile.path().join("downloads")
    }

    /// Waits until `count` elements match `css`.
    pub async fn wait_for_count(&self, css: &str, count: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + UI_TIMEOUT;
        loop {
            let found = self.client.find_all(Locator::Css(css)).await?.len();
            if found == count {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("expected {count} × {css}, found {found} after {UI_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of `attribute` on every element matching `css`, in document order.
    pub async fn attributes(&self, css: &str, attribute: &str) -> anyhow::Result<Vec<String>> {
        let mut values = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await? {
            values.push(element.attr(attribute).await?.unwrap_or_default());
        }
        Ok(values)
    }

    /// Runs JavaScript returning numbers (e.g. a bounding rectangle).
    pub async fn numbers(&self, script: &str) -> anyhow::Result<Vec<f64>> {
        let value = self.client.execute(script, vec![]).await?;
        let numbers: Option<Vec<f64>> = value
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect());
        numbers.ok_or_else(|| anyhow::anyhow!("{script} returned {value}"))
    }

    /// Presses the left button at `from` and releases it at `to` (viewport pixels), moving in
    /// steps like a hand would.
    pub async fn drag(&self, from: (f64, f64), to: (f64, f64)) -> anyhow::Result<()> {
        let step = |t: f64| PointerAction::MoveTo {
            duration: Some(Duration::from_millis(60)),
            x: (from.0 + (to.0 - from.0) * t).round(),
            y: (from.1 + (to.1 - from.1) * t).round(),
        };
        let actions = MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x: from.0.round(),
                y: from.1.round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(step(0.3))
            .then(step(0.7))
            .then(step(1.0))
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client.perform_actions(actions).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    /// Presses `key` with `modifiers` held, as the keyboard would send it to the page.
    pub async fn press(&self, modifiers: &[Modifier], key: char) -> anyhow::Result<()> {
        let code = |m: &Modifier| -> char {
            match m {
                Modifier::Control => Key::Control.into(),
                Modifier::Shift => Key::Shift.into(),
            }
        };
        let mut actions = KeyActions::new("keyboard".into());
        for modifier in modifiers {
            actions = actions.then(KeyAction::Down { value: code(modifier) });
        }
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        for modifier in modifiers.iter().rev() {
            actions = actions.then(KeyAction::Up { value: code(modifier) });
        }
        self.client.perform_actions(actions).await?;
        self.client.release_actions().await?;
        Ok(())
    }

    /// Saves a screenshot to the system temp folder (for failures) and returns its path.
    pub async fn screenshot(&self, name: &str) -> Option<PathBuf> {
        let png = self.client.screenshot().await.ok()?;
        let dir = std::env::temp_dir().join("distillery-e2e");
        std::fs::create_dir_all(&dir).ok()?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).ok()?;
        Some(path)
    }

    /// Ends a test in this browser: when `outcome` failed, a screenshot named `name` (its path
    /// printed); the browser quits either way; `outcome` comes back (or quitting's failure).
    pub async fn finish(self, name: &str, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        if outcome.is_err()
            && let Some(path) = self.screenshot(name).await
        {
            eprintln!("screenshot: {}", path.display());
        }
        self.quit().await?;
        outcome
    }

    /// Ends the WebDriver session (closing Chromium) and stops chromedriver.
    pub async fn quit(mut self) -> anyhow::Result<()> {
        let closed = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        closed.context("closing the browser session failed")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
        // Chromium outlives a killed chromedriver; its profile folder names it uniquely.
        let _ = std::process::Command::new("pkill")
            .arg("-f")
            .arg(self.profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn tool(env_var: &str, default: &str) -> PathBuf {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

async fn wait_until_ready(webdriver_url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(response) = http.get(format!("{webdriver_url}/status")).send().await
            && let Ok(status) = response.json::<serde_json::Value>().await
            && status["value"]["ready"] == serde_json::Value::Bool(true)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("chromedriver at {webdriver_url} was not ready within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
