//! A job's services: containers started beside its steps (a database, a
//! cache, the app under test) on a Docker network of the job's own, each
//! reachable there by its name and, for a job with host steps, from the host
//! on 127.0.0.1 at a published port (one every process on the host can
//! reach), waited for until ready, and removed however the job ends.
//!
//! A service gets less than Docker's defaults: no mounts at all (the spec has
//! no key for them), none of the capabilities that reach other containers or
//! the kernel (`NET_RAW` would let it spoof the bridge other jobs share), no
//! new privileges and a bounded number of processes. Its network and
//! container carry the owner label, so a Slipway killed with `kill -9` has
//! them removed by the next start's sweep ([`crate::Engine::reap_orphans`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkCreateRequest,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use slipway_spec::services::{ReadyCheck, Service};
use tokio_util::sync::CancellationToken;

use crate::docker::{Engine, OWNER_LABEL, owner};
use crate::mask::Masker;

/// Label naming the service a container is (its value) for a job.
pub const SERVICE_LABEL: &str = "slipway.service";
/// What a service may still do as root in its container: step down to its
/// own user and own its files (what database images do when they start).
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETUID",
    "SETGID",
    "KILL",
    "NET_BIND_SERVICE",
];
const PIDS_LIMIT: i64 = 4096;
/// How often a service that is not ready yet is asked again.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// How many of a service's last log lines an error shows.
const LOG_LINES: &str = "20";

/// Where the job is and what it may show: the labels its containers carry,
/// the masker its logs go through, and its cancellation.
pub(crate) struct Launch<'a> {
    pub job: &'a str,
    pub labels: HashMap<String, String>,
    /// The values of the job's secrets; a service takes those it names.
    pub secrets: &'a std::collections::BTreeMap<String, String>,
    pub masker: &'a Masker,
    pub cancel: &'a CancellationToken,
    /// Whether ports are published on the host's 127.0.0.1: only a job with
    /// host steps needs them (container steps reach a service by name), and
    /// a published port is open to every process on the host.
    pub publish: bool,
}

/// A started service: its container, its address on the job's network and
/// its ports (container port, and the host port when published).
#[derive(Debug)]
struct Started {
    name: String,
    prefix: String,
    id: String,
    address: Option<String>,
    ports: Vec<(u16, Option<u16>)>,
}

/// The services of one job attempt. Call [`Services::remove`] when the steps
/// are done; dropping it unremoved removes in the background.
#[derive(Debug, Default)]
pub(crate) struct Services {
    engine: Option<Engine>,
    network: Option<String>,
    started: Vec<Started>,
}

impl Services {
    /// The job's network, which its container steps join.
    pub fn network(&self) -> Option<&str> {
        self.network.as_deref()
    }

    /// Starts every service and waits until each is ready. Whatever was
    /// created stays recorded, so [`Services::remove`] removes it after a failure too.
    pub async fn start(
        &mut self,
        engine: &Engine,
        specs: &[Service],
        launch: &Launch<'_>,
    ) -> Result<Vec<String>, String> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        self.engine = Some(engine.clone());
        for spec in specs {
            engine
                .require_image(&spec.image)
                .await
                .map_err(|e| format!("service `{}`: {e}", spec.name))?;
        }
        let network = create_network(engine, launch).await?;
        self.network = Some(network.clone());
        for spec in specs {
            start_one(engine, spec, &network, launch, &mut self.started).await?;
        }
        let mut notes = Vec::new();
        for (spec, started) in specs.iter().zip(&self.started) {
            let took = wait_ready(engine, spec, started, launch).await?;
            notes.push(ready_note(spec, started, took));
        }
        Ok(notes)
    }

    /// Where each service is, for the steps: `DB_HOST`, `DB_PORT` (the first
    /// port) and `DB_PORT_5432` for each port. Container steps reach a service
    /// by name at its own ports; host steps at 127.0.0.1 and the published ones.
    pub fn env(&self, in_container: bool) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for s in &self.started {
            let host = if in_container {
                s.name.as_str()
            } else {
                "127.0.0.1"
            };
            env.push((format!("{}_HOST", s.prefix), host.to_string()));
            let port = |&(container, host): &(u16, Option<u16>)| {
                match host {
                    Some(host) if !in_container => host,
                    _ => container,
                }
                .to_string()
            };
            if let Some(first) = s.ports.first() {
                env.push((format!("{}_PORT", s.prefix), port(first)));
            }
            for p in &s.ports {
                env.push((format!("{}_PORT_{}", s.prefix, p.0), port(p)));
            }
        }
        env
    }

    /// Removes the containers, then the network (which Docker keeps while
    /// anything is attached).
    pub async fn remove(mut self) {
        let (Some(engine), ids, network) = self.take() else {
            return;
        };
        remove_all(&engine, ids, network).await;
    }

    fn take(&mut self) -> (Option<Engine>, Vec<String>, Option<String>) {
        let ids = self.started.drain(..).map(|s| s.id).collect();
        (self.engine.take(), ids, self.network.take())
    }
}

impl Drop for Services {
    /// A job whose future is dropped mid-way (its task aborted) still leaves
    /// no service behind while the process lives.
    fn drop(&mut self) {
        let (Some(engine), ids, network) = self.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { remove_all(&engine, ids, network).await });
        }
    }
}

async fn remove_all(engine: &Engine, ids: Vec<String>, network: Option<String>) {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    for id in ids {
        let _ = engine
            .docker
            .remove_container(&id, Some(options.clone()))
            .await;
    }
    if let Some(network) = network {
        let _ = engine.docker.remove_network(&network).await;
    }
}

/// Every service image is one the job's project may run, as for the job's own image.
pub(crate) async fn check_owners(
    engine: &Engine,
    owner: Option<crate::image_owner::Owner<'_>>,
    specs: &[Service],
) -> Result<(), String> {
    let Some(owner) = owner else {
        return Ok(());
    };
    for spec in specs {
        owner
            .may_use(engine, &spec.image)
            .await
            .map_err(|e| format!("service `{}`: {e}", spec.name))?;
    }
    Ok(())
}

fn unique_name(job: &str, what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("slipway-{job}-{what}-{}-{nanos:x}", std::process::id())
}

fn owned_labels(launch: &Launch<'_>) -> HashMap<String, String> {
    let mut labels = launch.labels.clone();
    labels.insert(OWNER_LABEL.to_string(), owner());
    labels
}

async fn create_network(engine: &Engine, launch: &Launch<'_>) -> Result<String, String> {
    let name = unique_name(launch.job, "net");
    let request = NetworkCreateRequest {
        name: name.clone(),
        driver: Some("bridge".into()),
        labels: Some(owned_labels(launch)),
        ..Default::default()
    };
    engine
        .docker
        .create_network(request)
        .await
        .map_err(|e| format!("cannot create the network for the job's services: {e}"))?;
    Ok(name)
}

/// Creates and starts one service's container; it is recorded in `created`
/// before it starts, so a failed start is still removed.
async fn start_one(
    engine: &Engine,
    spec: &Service,
    network: &str,
    launch: &Launch<'_>,
    created: &mut Vec<Started>,
) -> Result<(), String> {
    let body = container_body(spec, network, launch)?;
    let name = unique_name(launch.job, &spec.name);
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = engine
        .docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| {
            format!(
                "service `{}`: cannot create a container from `{}`: {e}",
                spec.name, spec.image
            )
        })?
        .id;
    created.push(Started {
        name: spec.name.clone(),
        prefix: spec.env_prefix(),
        id: id.clone(),
        address: None,
        ports: Vec::new(),
    });
    engine
        .docker
        .start_container(&id, None)
        .await
        .map_err(|e| {
            format!(
                "service `{}`: cannot start `{}`: {e}",
                spec.name, spec.image
            )
        })?;
    if let Some(started) = created.last_mut() {
        read_addresses(engine, started, network, spec).await;
    }
    Ok(())
}

fn container_body(
    spec: &Service,
    network: &str,
    launch: &Launch<'_>,
) -> Result<ContainerCreateBody, String> {
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for name in &spec.secrets {
        let value = launch.secrets.get(name).ok_or_else(|| {
            format!(
                "service `{}` needs the secret `{name}`, which this job did not get; \
                 set it for the project (or with --secret for `slipway run`)",
                spec.name
            )
        })?;
        env.push(format!("{name}={value}"));
    }
    let mut labels = owned_labels(launch);
    labels.insert(SERVICE_LABEL.to_string(), spec.name.clone());
    let ports: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .filter(|_| launch.publish)
        .map(|p| {
            let binding = PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(p.host.map(|h| h.to_string()).unwrap_or_default()),
            };
            (format!("{}/tcp", p.container), Some(vec![binding]))
        })
        .collect();
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env),
        labels: Some(labels),
        exposed_ports: Some(ports.keys().cloned().collect()),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            port_bindings: Some(ports),
            privileged: Some(false),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(CAPABILITIES.iter().map(|c| (*c).to_string()).collect()),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            pids_limit: Some(PIDS_LIMIT),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings {
                    aliases: Some(vec![spec.name.clone()]),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    })
}

/// The service's address on the job's network and the host ports Docker
/// chose, in the order the file lists the ports (the first is `NAME_PORT`).
async fn read_addresses(engine: &Engine, started: &mut Started, network: &str, spec: &Service) {
    let Ok(inspected) = engine.docker.inspect_container(&started.id, None).await else {
        return;
    };
    let settings = inspected.network_settings.unwrap_or_default();
    started.address = settings
        .networks
        .and_then(|mut n| n.remove(network))
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty());
    let published = settings.ports.unwrap_or_default();
    for port in &spec.ports {
        let host = published
            .get(&format!("{}/tcp", port.container))
            .cloned()
            .flatten()
            .into_iter()
            .flatten()
            .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()));
        started.ports.push((port.container, host));
    }
}

fn ready_note(spec: &Service, started: &Started, took: Duration) -> String {
    let published: Vec<String> = spec
        .ports
        .iter()
        .filter_map(|p| started.ports.iter().find(|(c, _)| *c == p.container))
        .filter_map(|(c, h)| h.map(|h| format!("{}:{c} = 127.0.0.1:{h}", spec.name)))
        .collect();
    let published = if published.is_empty() {
        String::new()
    } else {
        format!(" ({})", published.join(", "))
    };
    format!(
        "service `{}` ({}) ready after {:.1}s{published}",
        spec.name,
        spec.image,
        took.as_secs_f64()
    )
}

/// Waits until the service is ready, returning how long that took; an error
/// with the service's last log lines when it exits or its time runs out.
async fn wait_ready(
    engine: &Engine,
    spec: &Service,
    started: &Started,
    launch: &Launch<'_>,
) -> Result<Duration, String> {
    let begun = Instant::now();
    let deadline = begun + spec.ready.timeout;
    loop {
        if let Some(exit) = exited(engine, &started.id).await {
            let logs = last_logs(engine, &started.id, launch.masker).await;
            return Err(format!(
                "service `{}` ({}) exited with code {exit} before it was ready; its last log lines:\n{logs}",
                spec.name, spec.image
            ));
        }
        let why_not = match probe(engine, spec, started).await {
            Ok(()) => return Ok(begun.elapsed()),
            Err(why_not) => why_not,
        };
        if Instant::now() >= deadline {
            let logs = last_logs(engine, &started.id, launch.masker).await;
            return Err(format!(
                "service `{}` ({}) was not ready within {} ({}); its last log lines:\n{logs}",
                spec.name,
                spec.image,
                humantime::format_duration(spec.ready.timeout),
                launch.masker.mask_text(&why_not),
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = launch.cancel.cancelled() => return Err("canceled".into()),
        }
    }
}

/// The exit code of a service whose container has stopped; `None` while it runs.
async fn exited(engine: &Engine, id: &str) -> Option<i64> {
    let state = engine
        .docker
        .inspect_container(id, None)
        .await
        .ok()?
        .state?;
    if state.running == Some(true) {
        return None;
    }
    Some(state.exit_code.unwrap_or(-1))
}

/// One readiness check; the reason it failed otherwise.
async fn probe(engine: &Engine, spec: &Service, started: &Started) -> Result<(), String> {
    match &spec.ready.check {
        ReadyCheck::Started => Ok(()),
        ReadyCheck::Port(port) => {
            // The container's own address, not the published port: Docker's
            // proxy accepts on a published port before the service listens.
            let address = started
                .address
                .as_deref()
                .ok_or("the service has no address on the job's network")?;
            let connect = tokio::net::TcpStream::connect((address, *port));
            match tokio::time::timeout(Duration::from_secs(1), connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("port {port}: {e}")),
                Err(_) => Err(format!("port {port}: no answer within 1s")),
            }
        }
        ReadyCheck::Run(command) => run_check(engine, &started.id, command).await,
    }
}

/// Runs `command` in the service's container with `sh -c`; `Ok` on exit code 0.
async fn run_check(engine: &Engine, id: &str, command: &str) -> Result<(), String> {
    let config = ExecConfig {
        cmd: Some(vec!["sh".into(), "-c".into(), command.to_string()]),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = engine
        .docker
        .create_exec(id, config)
        .await
        .map_err(|e| format!("cannot run `{command}` in the service: {e}"))?;
    let mut output = String::new();
    let started = engine
        .docker
        .start_exec(&exec.id, Some(StartExecOptions::default()))
        .await
        .map_err(|e| format!("cannot run `{command}` in the service: {e}"))?;
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = started
    {
        while let Some(Ok(chunk)) = stream.next().await {
            output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
    }
    let inspected = engine
        .docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| format!("cannot read how `{command}` ended: {e}"))?;
    match inspected.exit_code {
        Some(0) => Ok(()),
        code => Err(format!(
            "`{command}` exited with code {}{}",
            code.map_or_else(|| "?".to_string(), |c| c.to_string()),
            last_line(&output)
        )),
    }
}

fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// The service's last log lines, masked and indented under the error.
async fn last_logs(engine: &Engine, id: &str, masker: &Masker) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(LOG_LINES)
        .build();
    let mut logs = engine.docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    if text.trim().is_empty() {
        return "    (none)".into();
    }
    masker
        .mask_text(&text)
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
