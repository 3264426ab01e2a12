//! The connection to the Docker engine, made once per run and only when a job needs it.

use bollard::Docker;
use bollard::errors::Error as DockerError;

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
}
