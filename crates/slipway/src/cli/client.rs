//! The CLI's side of the API: authenticated JSON requests, errors shown with
//! the server's own message, and Server-Sent Events read line by line.

use anyhow::{Context as _, anyhow, bail};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

/// Where the server is and who we are: `--server`/`SLIPWAY_URL`, `--token`/`SLIPWAY_TOKEN`.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server's base URL.
    #[arg(
        long = "server",
        env = "SLIPWAY_URL",
        default_value = "http://127.0.0.1:8420",
        global = true
    )]
    pub url: String,
    /// An API token (slw_…).
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(conn: &Connection) -> anyhow::Result<Client> {
        let token = conn
            .token
            .clone()
            .ok_or_else(|| anyhow!("no API token: set SLIPWAY_TOKEN or pass --token (the first admin token is in the server's data directory, admin.token)"))?;
        Ok(Client {
            http: reqwest::Client::builder().build()?,
            base: server_url(&conn.url)?,
            token,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Slipway server at {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{}", error_message(status, &text));
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the server's answer is not JSON")
    }

    /// Follows an SSE endpoint, calling `on_event(event, data)` for each event
    /// until the stream ends or the callback returns `false`.
    pub async fn follow(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> anyhow::Result<()> {
        let resp = self
            .request(Method::GET, path)
            .send()
            .await
            .context("cannot reach the Slipway server")?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!(
                "{}",
                error_message(status, &resp.text().await.unwrap_or_default())
            );
        }
        let mut stream = resp.bytes_stream();
        let (mut buf, mut event, mut data) = (Vec::new(), String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string();
                if line.is_empty() {
                    if !data.is_empty() && !on_event(&event, &data) {
                        return Ok(());
                    }
                    event.clear();
                    data.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        }
        Ok(())
    }
}

/// The server's base URL, checked here so that an empty or half-typed
/// `SLIPWAY_URL` is named as such instead of surfacing as reqwest's
/// "relative URL without a base".
fn server_url(given: &str) -> anyhow::Result<String> {
    const HOW: &str =
        "set SLIPWAY_URL (or pass --server) to the server's address, e.g. http://127.0.0.1:8420";
    let given = given.trim();
    if given.is_empty() {
        bail!("the server URL is empty: {HOW}");
    }
    let url = reqwest::Url::parse(given)
        .map_err(|_| anyhow!("the server URL `{given}` is not a full URL: {HOW}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("the server URL `{given}` needs http:// or https:// and a host: {HOW}");
    }
    Ok(given.trim_end_matches('/').to_string())
}

fn error_message(status: StatusCode, body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    match parsed.as_ref().and_then(|v| v["error"]["message"].as_str()) {
        Some(message) => format!("{message} ({status})"),
        None => format!("the server answered {status}"),
    }
}
