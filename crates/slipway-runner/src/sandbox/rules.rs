//! The Landlock rules: read everywhere but the protected paths and `/dev`,
//! all rights in the job's own directories and on a few harmless devices.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope,
};

use super::{Confinement, SandboxError, landlock_error, setup};

/// The Landlock ABI whose rights we handle: 5 brings device ioctls, 6 the
/// signal and abstract-socket scopes. An older kernel is refused.
const FS_ABI: ABI = ABI::V5;
const SCOPE_ABI: ABI = ABI::V6;

/// Devices a job may use; everything else in `/dev` is out of reach.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// Whether this kernel offers what the sandbox needs (Landlock with scopes).
pub fn kernel_support() -> Result<(), SandboxError> {
    ruleset()
        .and_then(|r| r.create())
        .map(drop)
        .map_err(|e| SandboxError::Unsupported(e.to_string()))
}

fn ruleset() -> Result<Ruleset, landlock::RulesetError> {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(FS_ABI))?
        .scope(Scope::from_all(SCOPE_ABI))
}

impl Confinement {
    /// Read everywhere but the protected paths and `/dev`, and in the
    /// readable paths asked for.
    pub(super) fn read_rules(&self) -> Result<RulesetCreated, SandboxError> {
        let mut created = ruleset().and_then(|r| r.create()).map_err(rules_error)?;
        let mut excluded: Vec<PathBuf> = self
            .protected
            .iter()
            .map(PathBuf::as_path)
            .filter_map(canonical)
            .collect();
        excluded.push(PathBuf::from("/dev"));
        let read = AccessFs::from_read(FS_ABI);
        let asked = self.readable.iter().filter(|p| p.exists()).cloned();
        for path in readable_paths(Path::new("/"), &excluded)
            .into_iter()
            .chain(asked)
        {
            created = add_rule(created, &path, read).map_err(rules_error)?;
        }
        Ok(created)
    }

    /// All rights in the job's own directories and on a few devices.
    pub(super) fn own_rules(
        &self,
        mut created: RulesetCreated,
    ) -> Result<RulesetCreated, SandboxError> {
        let all = AccessFs::from_all(FS_ABI);
        for path in DEVICES
            .iter()
            .map(PathBuf::from)
            .chain(self.writable.clone())
        {
            if path.exists() {
                created = add_rule(created, &path, all).map_err(rules_error)?;
            }
        }
        Ok(created)
    }
}

fn rules_error(e: landlock::RulesetError) -> SandboxError {
    setup("build the Landlock rules")(landlock_error(e))
}

pub(super) fn canonical(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok()
}

/// Grants `access` beneath `path` (only the file rights when it is a file).
fn add_rule(
    created: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, landlock::RulesetError> {
    let Ok(fd) = PathFd::new(path) else {
        // Gone since it was listed: nothing to grant.
        return Ok(created);
    };
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(FS_ABI)
    };
    created.add_rule(PathBeneath::new(fd, access))
}

/// The largest subtrees of `root` that hold none of `excluded`: Landlock only
/// allows, so a hole is made by granting every sibling along the way down to
/// it. Symbolic links are skipped (their targets have their own place).
fn readable_paths(root: &Path, excluded: &[PathBuf]) -> Vec<PathBuf> {
    if excluded.iter().any(|e| e == root) {
        return Vec::new();
    }
    if !excluded.iter().any(|e| e.starts_with(root)) {
        return vec![root.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for entry in entries.flatten() {
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if !is_link {
            paths.extend(readable_paths(&entry.path(), excluded));
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hole_is_made_of_siblings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in ["a/data/work", "a/other", "b"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::write(root.join("a/file"), "x").expect("write");
        let mut got = readable_paths(root, &[root.join("a/data")]);
        got.sort();
        assert_eq!(
            got,
            vec![root.join("a/file"), root.join("a/other"), root.join("b")]
        );
        assert!(readable_paths(root, &[root.to_path_buf()]).is_empty());
        assert_eq!(readable_paths(root, &[]), vec![root.to_path_buf()]);
    }
}
