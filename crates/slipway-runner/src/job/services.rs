//! A job's services around its steps: started (and waited for) first, their
//! addresses given to the steps as variables, container steps on their network.

use super::*;
use crate::services::{Launch, Services};

impl Attempt<'_> {
    /// The steps, with the job's services running beside them. The caller
    /// removes `services` whatever this returns.
    pub(super) async fn steps_beside_services(
        &mut self,
        services: &mut Services,
        ws: &Path,
        env: Vec<(String, String)>,
    ) -> Result<(), String> {
        self.start_services(services).await?;
        let in_container = self.job.image.is_some();
        // First, so a job's own `env` can still say otherwise.
        let env: Vec<(String, String)> =
            services.env(in_container).into_iter().chain(env).collect();
        if in_container {
            self.container_steps(ws, env, services.network()).await
        } else {
            self.host_steps(ws, &env).await
        }
    }

    /// Starts the job's services from images its project may use, and logs
    /// where each is once it is ready.
    async fn start_services(&self, services: &mut Services) -> Result<(), String> {
        if self.job.services.is_empty() {
            return Ok(());
        }
        self.refuse_fixed_host_ports()?;
        let engine = self.engine()?;
        crate::services::check_owners(&engine, self.image_owner(), &self.job.services).await?;
        let launch = Launch {
            job: self.name(),
            labels: self.labels(),
            secrets: &self.ctx.secrets,
            masker: &self.masker,
            cancel: &self.cancel,
            publish: self.job.image.is_none(),
        };
        let notes = services.start(&engine, &self.job.services, &launch).await?;
        for line in notes {
            note(&self.ctx.events, self.name(), line).await;
        }
        Ok(())
    }

    /// A fixed host port is for `slipway run` on a developer's own machine.
    /// On a server or agent, another project's job could take the port first
    /// and be sent this job's connections (its host steps share the host's
    /// network), so a service there gets a free port, named in `NAME_PORT`.
    fn refuse_fixed_host_ports(&self) -> Result<(), String> {
        if self.ctx.project.is_empty() {
            return Ok(());
        }
        for service in &self.job.services {
            if let Some(port) = service.ports.iter().find(|p| p.host.is_some()) {
                let host = port.host.unwrap_or_default();
                return Err(format!(
                    "service `{}` asks for the fixed host port {host} (`\"{host}:{}\"` in its `ports`), \
                     which jobs on a server or agent may not: another job on this host could take \
                     the port first and be sent this job's connections; write `ports: [{}]` and \
                     connect to `${}_PORT`",
                    service.name,
                    port.container,
                    port.container,
                    service.env_prefix()
                ));
            }
        }
        Ok(())
    }
}
