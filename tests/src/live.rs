//! A client of the project's live channel, as a script would write one: a WebSocket with an
//! API token, JSON events in, the sequence number followed.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open connection to `/api/projects/{pid}/live`.
pub struct LiveClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl LiveClient {
    /// Connects as the token's account, from `since`, saying `image_id` is on screen; `origin`
    /// is sent as a browser would (`None`: a script's connection has none).
    pub async fn connect(
        studio_url: &str,
        token: &str,
        project_id: i64,
        since: i64,
        image_id: Option<i64>,
        origin: Option<&str>,
    ) -> Result<Self, WsError> {
        let base = studio_url.replacen("http://", "ws://", 1);
        let image = image_id.map_or(String::new(), |id| format!("&image_id={id}"));
        let mut request =
            format!("{base}/api/projects/{project_id}/live?since={since}{image}").into_client_request()?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| WsError::HttpFormat(e.into()))?,
        );
        if let Some(origin) = origin {
            headers.insert(
                "origin",
                HeaderValue::from_str(origin).map_err(|e| WsError::HttpFormat(e.into()))?,
            );
        }
        // tungstenite zero-fills its whole read buffer on every read: events are a few hundred
        // bytes, so the default 128 KiB would cost more than reading them (bench-live runs 210 of
        // these on the cores the server uses). Bigger messages still grow it as needed.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true).await?;
        Ok(Self { socket })
    }

    /// The next event, waiting at most `limit`.
    pub async fn next(&mut self, limit: Duration) -> anyhow::Result<api::LiveEvent> {
        loop {
            let message = tokio::time::timeout(limit, self.socket.next())
                .await
                .context("no live event in time")?
                .context("the live channel closed")??;
            match message {
                Message::Text(text) => return Ok(serde_json::from_str(text.as_str())?),
                Message::Close(frame) => bail!("the server closed the live channel: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Events until the first one `stop` accepts (included).
    pub async fn until(
        &mut self,
        limit: Duration,
        stop: impl Fn(&api::LiveEvent) -> bool,
    ) -> anyhow::Result<Vec<api::LiveEvent>> {
        let mut events = Vec::new();
        loop {
            let event = self.next(limit).await?;
            let done = stop(&event);
            events.push(event);
            if done {
                return Ok(events);
            }
        }
    }

    /// Says which image is on screen now.
    pub async fn viewing(&mut self, image_id: Option<i64>) -> anyhow::Result<()> {
        let request = serde_json::to_string(&api::LiveRequest::Viewing { image_id })?;
        self.socket.send(Message::Text(request.into())).await?;
        Ok(())
    }

    /// Takes a lease of the image on screen too.
    pub async fn take_over(&mut self) -> anyhow::Result<()> {
        let request = serde_json::to_string(&api::LiveRequest::TakeOver)?;
        self.socket.send(Message::Text(request.into())).await?;
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.socket.close(None).await?;
        Ok(())
    }
}
