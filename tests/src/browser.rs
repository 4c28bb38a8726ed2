//! Headless Chromium driven over WebDriver (chromedriver + fantoccini).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
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
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
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
