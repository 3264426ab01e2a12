//! The connection to the Docker engine, made once per run and only when a job needs it.

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};

/// A reachable Docker engine.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
}

impl Engine {
    /// Connects the way the `docker` CLI does (`DOCKER_HOST`, else the local socket)
    /// and checks the engine answers.
    pub async fn connect() -> Result<Engine, String> {
        let where_ =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| format!("cannot connect to the Docker engine at {where_}: {e}"))?;
        docker.ping().await.map_err(|e| {
            format!(
                "the Docker engine at {where_} does not answer ({e}); start it (`dockerd`) or set DOCKER_HOST"
            )
        })?;
        Ok(Engine { docker })
    }

    /// Fails with a message that says how to get the image when it is not local.
    /// Slipway never pulls on its own: builds must not depend on a public registry.
    pub async fn require_image(&self, image: &str) -> Result<(), String> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(format!(
                "image `{image}` is not on this machine, and Slipway does not pull images; \
                 build it (`docker build -t {image} .`, or an `image_build` job before this one) \
                 or import it (`docker import ROOTFS.tar {image}`)"
            )),
            Err(e) => Err(format!("cannot inspect image `{image}`: {e}")),
        }
    }

    /// An image's labels; `None` when it is not on this machine.
    pub async fn image_labels(
        &self,
        image: &str,
    ) -> Result<Option<HashMap<String, String>>, String> {
        match self.docker.inspect_image(image).await {
            Ok(inspected) => Ok(Some(
                inspected.config.and_then(|c| c.labels).unwrap_or_default(),
            )),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(format!("cannot inspect image `{image}`: {e}")),
        }
    }

    /// Removes the containers of jobs whose Slipway process on this host died
    /// without cleaning up (a `kill -9`), step containers and services alike,
    /// then the networks of those jobs' services; returns how many containers
    /// and networks it removed.
    pub async fn reap_orphans(&self) -> usize {
        let containers = self.reap_orphan_containers().await;
        containers + self.reap_orphan_networks().await
    }

    async fn reap_orphan_containers(&self) -> usize {
        let filters = HashMap::from([("label", vec![OWNER_LABEL])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let Ok(containers) = self.docker.list_containers(Some(options)).await else {
            return 0;
        };
        let mut removed = 0;
        for container in containers {
            let owner = container
                .labels
                .as_ref()
                .and_then(|l| l.get(OWNER_LABEL))
                .cloned()
                .unwrap_or_default();
            let Some(id) = container.id.filter(|_| is_orphan(&owner)) else {
                continue;
            };
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            if self
                .docker
                .remove_container(&id, Some(options))
                .await
                .is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Networks go after their containers: Docker keeps one while anything is attached.
    async fn reap_orphan_networks(&self) -> usize {
        let filters = HashMap::from([("label", vec![OWNER_LABEL])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let Ok(networks) = self.docker.list_networks(Some(options)).await else {
            return 0;
        };
        let mut removed = 0;
        for network in networks {
            let orphan = network
                .labels
                .as_ref()
                .and_then(|l| l.get(OWNER_LABEL))
                .is_some_and(|owner| is_orphan(owner));
            let Some(id) = network.id.filter(|_| orphan) else {
                continue;
            };
            if self.docker.remove_network(&id).await.is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Label naming the Slipway process that started a container or network:
/// `HOST:PID@START` (its start time, so a pid reused after a `kill -9` does
/// not keep the orphan alive).
pub const OWNER_LABEL: &str = "slipway.owner";

/// This process as a container owner.
pub fn owner() -> String {
    format!("{}:{}", hostname(), crate::orphans::this_owner())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// An owner on this host that is gone, dying (a zombie just after a
/// `kill -9`) or whose pid another process has: the rule the process-group
/// sweep uses ([`crate::orphans`]).
fn is_orphan(owner: &str) -> bool {
    let Some((host, process)) = owner.rsplit_once(':') else {
        return false;
    };
    host == hostname() && !crate::orphans::owner_alive(process)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_with_a_reused_pid_is_an_orphan() {
        let me = owner();
        assert!(!is_orphan(&me), "this process owns {me}");
        let (rest, start) = me.rsplit_once('@').expect("HOST:PID@START");
        let start: u64 = start.parse().expect("start time");
        // The same, live pid with another start time: a process that got the pid.
        assert!(is_orphan(&format!("{rest}@{}", start + 1)));
        // Another host's owners are that host's to sweep.
        assert!(!is_orphan(&format!(
            "elsewhere:{}@{}",
            std::process::id(),
            start + 1
        )));
    }
}
