//! The `docker` and `swarm` targets: containers (or one Swarm service) of the
//! release's image, pulled from Slipway's own registry by digest and labelled
//! so a running container leads back to its release, run and commit.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, EndpointPortConfig, EndpointPortConfigProtocolEnum,
    EndpointPortConfigPublishModeEnum, EndpointSpec, HealthConfig, HostConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, TaskSpec, TaskSpecContainerSpec, TaskState,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListTasksOptionsBuilder, RemoveContainerOptionsBuilder, UpdateServiceOptions,
};
use futures_util::StreamExt;

/// Labels every deployed container carries.
pub const LABEL_PROJECT: &str = "slipway.project";
pub const LABEL_ENVIRONMENT: &str = "slipway.environment";
pub const LABEL_RELEASE: &str = "slipway.release";
pub const LABEL_COMMIT: &str = "slipway.commit";
pub const LABEL_RUN: &str = "slipway.run";
pub const LABEL_DEPLOYMENT: &str = "slipway.deployment";

/// Registry credentials for pulling one image.
#[derive(Debug, Clone)]
pub struct Pull {
    /// `HOST/REPOSITORY/IMAGE@sha256:…`
    pub reference: String,
    pub username: String,
    pub password: String,
}

/// What a container or service runs.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub port: u16,
    pub env: Vec<(String, String)>,
    pub labels: HashMap<String, String>,
    /// A command the engine runs inside to judge health (swarm updates wait on it).
    pub health_cmd: Option<String>,
}

pub async fn connect() -> Result<Docker, String> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| format!("cannot connect to the Docker engine: {e}"))?;
    docker.ping().await.map_err(|e| {
        format!("the Docker engine does not answer ({e}); start it or use the `local` target")
    })?;
    Ok(docker)
}

/// Pulls the image by digest unless the engine already has it.
pub async fn pull(docker: &Docker, pull: &Pull) -> Result<(), String> {
    if docker.inspect_image(&pull.reference).await.is_ok() {
        return Ok(());
    }
    let options = CreateImageOptionsBuilder::default()
        .from_image(&pull.reference)
        .build();
    let creds = DockerCredentials {
        username: Some(pull.username.clone()),
        password: Some(pull.password.clone()),
        ..Default::default()
    };
    let mut progress = docker.create_image(Some(options), None, Some(creds));
    while let Some(step) = progress.next().await {
        step.map_err(|e| format!("cannot pull {}: {e}", pull.reference))?;
    }
    Ok(())
}

fn env_list(env: &[(String, String)], port: u16) -> Vec<String> {
    env.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .chain([format!("PORT={port}")])
        .collect()
}

/// A running container of a version.
#[derive(Debug, Clone)]
pub struct ContainerInstance {
    pub id: String,
    pub addr: SocketAddr,
}

/// Creates and starts a container publishing its port on a free loopback port.
pub async fn start_container(
    docker: &Docker,
    spec: &ContainerSpec,
) -> Result<ContainerInstance, String> {
    let port_key = format!("{}/tcp", spec.port);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(env_list(&spec.env, spec.port)),
        labels: Some(spec.labels.clone()),
        exposed_ports: Some(vec![port_key.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )])),
            // The engine restarts a crashed version with its own backoff.
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default()
        .name(&spec.name)
        .build();
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(|e| {
            format!(
                "cannot create container {} from {}: {e}",
                spec.name, spec.image
            )
        })?;
    docker
        .start_container(&created.id, None)
        .await
        .map_err(|e| format!("cannot start container {}: {e}", spec.name))?;
    let addr = published(docker, &created.id, &port_key).await?;
    Ok(ContainerInstance {
        id: created.id,
        addr,
    })
}

async fn published(docker: &Docker, id: &str, port_key: &str) -> Result<SocketAddr, String> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| format!("cannot inspect container {id}: {e}"))?;
    let port = info
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|p| p.get(port_key).cloned().flatten())
        .and_then(|b| b.into_iter().find_map(|b| b.host_port))
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| format!("container {id} publishes no port for {port_key}"))?;
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

/// Why the container is not running, if it is not.
pub async fn down(docker: &Docker, id: &str) -> Option<String> {
    match docker.inspect_container(id, None).await {
        Ok(info) => {
            let state = info.state?;
            if state.running == Some(true) && state.restarting != Some(true) {
                None
            } else {
                Some(format!(
                    "the container is not running (exit code {})",
                    state.exit_code.unwrap_or_default()
                ))
            }
        }
        Err(e) => Some(format!("the container is gone: {e}")),
    }
}

pub async fn remove_container(docker: &Docker, id: &str) {
    let _ = docker.stop_container(id, None).await;
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    let _ = docker.remove_container(id, Some(options)).await;
}

/// The running container of a deployment, if one survived a server restart.
pub async fn find_container(
    docker: &Docker,
    deployment: i64,
    port: u16,
) -> Option<ContainerInstance> {
    let label = format!("{LABEL_DEPLOYMENT}={deployment}");
    let filters = HashMap::from([("label", vec![label.as_str()]), ("status", vec!["running"])]);
    let options = ListContainersOptionsBuilder::default()
        .filters(&filters)
        .build();
    let found = docker.list_containers(Some(options)).await.ok()?;
    let id = found.into_iter().find_map(|c| c.id)?;
    let addr = published(docker, &id, &format!("{port}/tcp")).await.ok()?;
    Some(ContainerInstance { id, addr })
}

/// Removes every container and service a project's environments run.
pub async fn remove_project(docker: &Docker, project: &str) {
    let label = format!("{LABEL_PROJECT}={project}");
    let filters = HashMap::from([("label", vec![label.as_str()])]);
    if let Ok(services) = docker
        .list_services(Some(
            bollard::query_parameters::ListServicesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
    {
        for id in services.into_iter().filter_map(|s| s.id) {
            let _ = docker.delete_service(&id).await;
        }
    }
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    for id in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.id)
    {
        remove_container(docker, &id).await;
    }
}

/// Removes an environment's containers except `keep` (leftovers of a server that died mid-deploy).
pub async fn remove_others(docker: &Docker, project: &str, environment: &str, keep: Option<&str>) {
    let labels = [
        format!("{LABEL_PROJECT}={project}"),
        format!("{LABEL_ENVIRONMENT}={environment}"),
    ];
    let filters = HashMap::from([("label", labels.iter().map(String::as_str).collect())]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(found) = docker.list_containers(Some(options)).await else {
        return;
    };
    for id in found.into_iter().filter_map(|c| c.id) {
        if Some(id.as_str()) != keep {
            remove_container(docker, &id).await;
        }
    }
}

/// How a swarm update ended.
#[derive(Debug)]
pub enum SwarmOutcome {
    /// Every task runs the new spec and is healthy.
    Updated(Vec<SocketAddr>),
    /// The engine rolled the service back by itself; the message says why.
    RolledBack(String),
}

/// Creates the environment's service or updates it to the new image:
/// start-first, waiting on the health check, rolled back by the engine when
/// the update fails. Returns once the update has settled either way.
pub async fn swarm_deploy(
    docker: &Docker,
    spec: &ContainerSpec,
    replicas: u32,
    pull: &Pull,
    route: &crate::Route,
    timeout: Duration,
) -> Result<SwarmOutcome, String> {
    let health = spec.health_cmd.as_ref().map(|cmd| HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), cmd.clone()]),
        interval: Some(500_000_000),
        timeout: Some(5_000_000_000),
        retries: Some(3),
        start_period: Some(0),
        ..Default::default()
    });
    let service = ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                env: Some(env_list(&spec.env, spec.port)),
                labels: Some(spec.labels.clone()),
                health_check: health,
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::from(replicas)),
            }),
            ..Default::default()
        }),
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(2_000_000_000),
            ..Default::default()
        }),
        rollback_config: Some(ServiceSpecRollbackConfig {
            parallelism: Some(1),
            order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
            ..Default::default()
        }),
        // Host-mode publishing with no fixed port: each task gets its own, so
        // old and new tasks run side by side during a start-first update.
        // (The ingress mesh is not used: it needs IPVS.)
        endpoint_spec: Some(EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(spec.port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let creds = DockerCredentials {
        username: Some(pull.username.clone()),
        password: Some(pull.password.clone()),
        ..Default::default()
    };
    let existing = docker.inspect_service(&spec.name, None).await.ok();
    match &existing {
        Some(s) => {
            let version = s.version.as_ref().and_then(|v| v.index).unwrap_or_default();
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or_default(),
                ..Default::default()
            };
            docker
                .update_service(&spec.name, service, options, Some(creds))
                .await
                .map_err(|e| format!("cannot update service {}: {e}", spec.name))?;
        }
        None => {
            docker
                .create_service(service, Some(creds))
                .await
                .map_err(|e| format!("cannot create service {}: {e}", spec.name))?;
        }
    }
    wait_settled(docker, spec, replicas, route, timeout).await
}

async fn wait_settled(
    docker: &Docker,
    spec: &ContainerSpec,
    replicas: u32,
    route: &crate::Route,
    timeout: Duration,
) -> Result<SwarmOutcome, String> {
    let name = spec.name.as_str();
    let start = Instant::now();
    loop {
        let service = docker
            .inspect_service(name, None)
            .await
            .map_err(|e| format!("cannot inspect service {name}: {e}"))?;
        let status = service.update_status.as_ref();
        let state = status.and_then(|s| s.state);
        let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
        // Tasks of this deployment, healthy: the update is done. (An update
        // status alone may still be the previous update's, and the image may
        // be the same as before.)
        let ours = spec.labels.get(LABEL_DEPLOYMENT).map(String::as_str);
        let new = healthy_tasks(docker, name, ours).await?;
        if new.len() >= replicas as usize && state != Some(ServiceUpdateStatusStateEnum::UPDATING) {
            return Ok(SwarmOutcome::Updated(new));
        }
        let current = service
            .spec
            .and_then(|s| s.task_template)
            .and_then(|t| t.container_spec)
            .and_then(|c| c.labels)
            .and_then(|l| l.get(LABEL_DEPLOYMENT).cloned());
        match state {
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                if current.as_deref() != ours =>
            {
                return Ok(SwarmOutcome::RolledBack(message));
            }
            Some(
                ServiceUpdateStatusStateEnum::PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED,
            ) => {
                return Err(format!("the update of service {name} paused: {message}"));
            }
            _ => {}
        }
        // Meanwhile the proxy follows whichever tasks are up, old or new, so
        // it does not send requests to tasks the update has stopped.
        let up = healthy_tasks(docker, name, None).await?;
        if !up.is_empty() && up != route.addrs() {
            route.switch(up.into_iter().map(crate::Backend::new).collect());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "service {name} did not settle within {timeout:?} ({})",
                if message.is_empty() {
                    "no update status"
                } else {
                    message.as_str()
                }
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The host addresses of the service's running, healthy tasks of its current spec.
/// With `deployment`, only tasks of that deployment count.
pub async fn healthy_tasks(
    docker: &Docker,
    name: &str,
    deployment: Option<&str>,
) -> Result<Vec<SocketAddr>, String> {
    let filters = HashMap::from([("service", vec![name]), ("desired-state", vec!["running"])]);
    let options = ListTasksOptionsBuilder::default().filters(&filters).build();
    let tasks = docker
        .list_tasks(Some(options))
        .await
        .map_err(|e| format!("cannot list the tasks of {name}: {e}"))?;
    let mut out = Vec::new();
    for task in tasks {
        let task_deployment = task
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(LABEL_DEPLOYMENT))
            .map(String::as_str);
        if deployment.is_some_and(|want| task_deployment != Some(want)) {
            continue;
        }
        let Some(status) = task.status else { continue };
        if status.state != Some(TaskState::RUNNING) {
            continue;
        }
        let container = status.container_status.and_then(|c| c.container_id);
        if let Some(id) = container {
            let healthy = docker
                .inspect_container(&id, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.health)
                .and_then(|h| h.status)
                .map(|s| s.to_string());
            if healthy
                .as_deref()
                .is_some_and(|h| h != "healthy" && h != "none" && !h.is_empty())
            {
                continue;
            }
        }
        let port = status
            .port_status
            .and_then(|p| p.ports)
            .and_then(|ports| ports.into_iter().find_map(|p| p.published_port));
        if let Some(port) = port.and_then(|p| u16::try_from(p).ok()) {
            out.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    Ok(out)
}

/// Asks the engine to put the service back to its previous spec.
pub async fn swarm_rollback(docker: &Docker, name: &str, timeout: Duration) -> Result<(), String> {
    let service = docker
        .inspect_service(name, None)
        .await
        .map_err(|e| format!("cannot inspect service {name}: {e}"))?;
    let (Some(spec), Some(version)) = (service.spec.clone(), service.version.and_then(|v| v.index))
    else {
        return Err(format!("service {name} has no previous spec to go back to"));
    };
    let options = UpdateServiceOptions {
        version: i32::try_from(version).unwrap_or_default(),
        rollback: Some("previous".into()),
        ..Default::default()
    };
    docker
        .update_service(name, spec, options, None)
        .await
        .map_err(|e| format!("cannot roll service {name} back: {e}"))?;
    let start = Instant::now();
    while start.elapsed() < timeout {
        let s = docker
            .inspect_service(name, None)
            .await
            .map_err(|e| e.to_string())?;
        let state = s.update_status.and_then(|u| u.state);
        if matches!(
            state,
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
        ) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "service {name} did not finish rolling back within {timeout:?}"
    ))
}
