//! Verification: a new version must pass its health check before it takes
//! traffic, and the smoke tests after; either failing sends the environment
//! back to what it ran before. Health commands and smoke tests run confined
//! to their release, as its process does (see [`crate::sandbox`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slipway_spec::{Health, HealthCheck};

use crate::sandbox::ReleaseSandbox;

/// How often a version that is starting is asked again.
const PROBE_EVERY: Duration = Duration::from_millis(20);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Smoke tests get this long in all.
const SMOKE_TIMEOUT: Duration = Duration::from_secs(300);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// One probe of a version at `addr`: `Err` says what is wrong. A command
/// runs in `sandbox`.
pub async fn probe(
    client: &reqwest::Client,
    addr: SocketAddr,
    check: &HealthCheck,
    sandbox: &ReleaseSandbox,
) -> Result<(), String> {
    match check {
        HealthCheck::Http(path) => {
            let url = format!("http://{addr}{path}");
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("GET {path} answered {}", r.status())),
                Err(e) if e.is_connect() => Err(format!("nothing answers on {addr}")),
                Err(e) => Err(format!("GET {path} failed: {e}")),
            }
        }
        HealthCheck::Command(cmd) => {
            let url = format!("http://{addr}");
            let env = [("SLIPWAY_INSTANCE_URL".to_string(), url)];
            let mut command = sandbox
                .shell(cmd, &env)
                .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
            let out = tokio::time::timeout(PROBE_TIMEOUT, command.kill_on_drop(true).output())
                .await
                .map_err(|_| format!("`{cmd}` took longer than {PROBE_TIMEOUT:?}"))?
                .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`{cmd}` failed ({}): {}",
                    out.status,
                    tail(&out.stderr)
                ))
            }
        }
    }
}

/// Waits until every address passes the check, or the health timeout passes,
/// or `down` reports the version stopped. Returns the last failure.
pub async fn until_healthy<F, Fut>(
    addrs: &[SocketAddr],
    health: &Health,
    sandbox: &ReleaseSandbox,
    mut down: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let client = client();
    let start = Instant::now();
    for &addr in addrs {
        loop {
            let last = match probe(&client, addr, &health.check, sandbox).await {
                Ok(()) => break,
                Err(e) => e,
            };
            if let Some(why) = down().await {
                return Err(format!(
                    "the new version stopped before it was healthy: {why}"
                ));
            }
            if start.elapsed() > health.timeout {
                return Err(format!(
                    "the health check did not pass within {:?}: {last}",
                    health.timeout
                ));
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
    Ok(())
}

/// Runs the smoke tests in order against the environment's URL, in the
/// release's sandbox; the first failure is returned.
pub async fn smoke(
    commands: &[String],
    env_url: &str,
    sandbox: &ReleaseSandbox,
    env: &[(String, String)],
) -> Result<(), String> {
    for cmd in commands {
        let mut all = env.to_vec();
        all.push(("SLIPWAY_ENV_URL".to_string(), env_url.to_string()));
        let mut command = sandbox
            .shell(cmd, &all)
            .map_err(|e| format!("cannot run smoke test `{cmd}`: {e}"))?;
        let run = command.kill_on_drop(true).output();
        let out = tokio::time::timeout(SMOKE_TIMEOUT, run)
            .await
            .map_err(|_| format!("smoke test `{cmd}` took longer than {SMOKE_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot run smoke test `{cmd}`: {e}"))?;
        if !out.status.success() {
            let mut said = tail(&out.stderr);
            if said.is_empty() {
                said = tail(&out.stdout);
            }
            return Err(format!(
                "smoke test `{cmd}` failed ({}): {said}",
                out.status
            ));
        }
    }
    Ok(())
}

/// The last line or so of a command's output, for a reason people can read.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let start = text.len().saturating_sub(400);
    let start = (start..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[start..].to_string()
}
