//! Images a job builds: the engine it builds with, the labels that say whose
//! an image is, the checks that keep a project to its own local names, the
//! build itself and the pushes to the server's registry.

use super::*;

impl Attempt<'_> {
    pub(super) fn engine(&self) -> Result<Engine, String> {
        self.ctx
            .docker
            .clone()
            .ok_or_else(|| format!("job `{}` needs Docker, which is not available", self.name()))
    }

    /// Labels on containers and images, so they can be traced back to the run.
    pub(super) fn labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::from([
            ("slipway.job".to_string(), self.name().to_string()),
            ("slipway.run".to_string(), self.ctx.run_number.to_string()),
            (
                "slipway.commit".to_string(),
                self.ctx.revision.commit.clone(),
            ),
            (
                "slipway.source".to_string(),
                self.ctx.source.root.display().to_string(),
            ),
        ]);
        if !self.ctx.project.is_empty() {
            labels.insert(PROJECT_LABEL.to_string(), self.ctx.project.clone());
            labels.insert(PROTECTED_LABEL.to_string(), self.ctx.protected.to_string());
        }
        labels
    }

    /// Whose images this job may tag and use; `None` for `slipway run` (no
    /// project: the developer's own machine keeps free tags).
    pub(super) fn image_owner(&self) -> Option<Owner<'_>> {
        (!self.ctx.project.is_empty()).then(|| Owner {
            project: &self.ctx.project,
            protected: self.ctx.protected,
            registry: self.ctx.registry.as_ref().map(|r| r.host.as_str()),
        })
    }

    /// Before a build: every tag is the project's and replaces no other
    /// project's image, and every `FROM` image is one this job may use.
    /// Names to push are held to the registry's push rule instead, which
    /// refuses them with its own message.
    async fn check_image_names(
        &self,
        engine: &Engine,
        build: &slipway_spec::ImageBuild,
        ws: &Path,
        (tags, pushed): (&[String], &[String]),
    ) -> Result<(), String> {
        let Some(owner) = self.image_owner() else {
            return Ok(());
        };
        for tag in tags.iter().filter(|t| !pushed.contains(t)) {
            owner.may_tag(tag)?;
        }
        for tag in tags.iter().chain(pushed) {
            owner.may_overwrite(engine, tag).await?;
        }
        let path = ws.join(&build.context).join(&build.dockerfile);
        let dockerfile = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read the Dockerfile {}: {e}", path.display()))?;
        for base in image_owner::base_images(&dockerfile, &build.build_args) {
            owner.may_use(engine, &base).await?;
        }
        Ok(())
    }

    pub(super) async fn build_image(
        &mut self,
        build: &slipway_spec::ImageBuild,
        ws: &Path,
    ) -> Result<(), String> {
        let engine = self.engine()?;
        let render = |templates: &[slipway_spec::Template]| -> Result<Vec<String>, String> {
            templates
                .iter()
                .map(|t| {
                    t.render(&self.vars(), |_| {
                        Err::<String, String>("hash is not allowed in image tags".into())
                    })
                })
                .collect()
        };
        let pushed = match (&build.push, &self.ctx.registry) {
            (Some(target), Some(access)) => render(&build.push_tags)?
                .iter()
                .map(|t| format!("{}/{target}:{t}", access.host))
                .collect(),
            (Some(target), None) => {
                note(
                    &self.ctx.events,
                    self.name(),
                    format!("not pushing to {target}: only runs on a Slipway server push images"),
                )
                .await;
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        let mut tags = render(&build.tags)?;
        if tags.is_empty() {
            tags = match &build.push {
                Some(target) if pushed.is_empty() => render(&build.push_tags)?
                    .iter()
                    .map(|t| format!("{target}:{t}"))
                    .collect(),
                _ => pushed.clone(),
            };
        }
        self.check_image_names(&engine, build, ws, (&tags, &pushed))
            .await?;
        let spec = image_build::Build {
            job: self.job.name.as_str(),
            masker: &self.masker,
            context: ws.join(&build.context),
            dockerfile: &build.dockerfile,
            tags: tags.clone(),
            build_args: build.build_args.clone(),
            labels: self.labels().into_iter().collect(),
        };
        image_build::build(&engine, spec, &self.ctx.events, &self.cancel).await?;
        self.report.images = tags.clone();
        self.push_images(&engine, &tags[0], &pushed).await
    }

    /// Tags the built image with each pushed name and pushes it.
    async fn push_images(
        &mut self,
        engine: &Engine,
        built: &str,
        names: &[String],
    ) -> Result<(), String> {
        let Some(access) = self.ctx.registry.clone() else {
            return Ok(());
        };
        for name in names {
            if name != built {
                image_build::tag(engine, built, name).await?;
            }
            let digest = crate::push::push(
                engine,
                &access,
                name,
                self.name(),
                &self.ctx.events,
                &self.cancel,
            )
            .await?;
            self.report.pushed.push(crate::PushedImage {
                reference: name.clone(),
                digest,
            });
        }
        Ok(())
    }
}
