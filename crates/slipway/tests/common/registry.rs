//! A real server with `ci` and `release` repositories, a docker client logged
//! in to it, skopeo and curl: the registry tests' harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest as _, Sha256};

use super::require_docker;
use super::server::ServerProcess;
pub use super::text;

/// A server with `ci` and `release` repositories, and a docker client logged in to it.
pub struct Registry {
    pub server: ServerProcess,
    /// `127.0.0.1:PORT`, as image names start.
    pub host: String,
    pub docker_config: tempfile::TempDir,
    images: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(&["--workers", "0"])
    }

    /// The same, with other server flags (in-process workers, say).
    pub fn start_with(flags: &[&str]) -> Registry {
        require_docker();
        require_skopeo();
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = ServerProcess::start(&tmp.path().join("data"), flags);
        let registry = Registry::on(server, tmp);
        registry.ok(&["repo", "add", "ci", "--kind", "oci"]);
        registry.ok(&[
            "repo", "add", "release", "--kind", "oci", "--policy", "release",
        ]);
        registry
    }

    pub fn on(server: ServerProcess, tmp: tempfile::TempDir) -> Registry {
        let host = server.url.trim_start_matches("http://").to_string();
        let registry = Registry {
            server,
            host,
            docker_config: tempfile::tempdir().expect("tempdir"),
            images: Vec::new(),
            _tmp: tmp,
        };
        registry.login(&registry.server.token.clone());
        registry
    }

    pub fn login(&self, token: &str) {
        let mut cmd = self.docker(&["login", &self.host, "-u", "tester", "--password-stdin"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("docker login");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("token");
        let out = child.wait_with_output().expect("docker login");
        assert!(out.status.success(), "docker login: {}", text(&out));
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.server.cli(args);
        assert!(out.status.success(), "slipway {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_CONFIG", self.docker_config.path());
        cmd
    }

    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args).output().expect("docker runs");
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds an image from the local busybox with one layer per file, tagged `name` here.
    pub fn build(&mut self, name: &str, files: &[(&str, &[u8])]) -> String {
        let context = tempfile::tempdir().expect("context");
        let mut dockerfile = format!("FROM {}\n", super::BUSYBOX);
        for (file, content) in files {
            std::fs::write(context.path().join(file), content).expect("write");
            dockerfile.push_str(&format!("COPY {file} /{file}\n"));
        }
        let first = files.first().map_or("", |f| f.0);
        dockerfile.push_str(&format!("CMD [\"cat\", \"/{first}\"]\n"));
        std::fs::write(context.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
        let image = self.image(name);
        let context_dir = context.path().to_string_lossy().into_owned();
        self.docker_ok(&["build", "-q", "-t", &image, &context_dir]);
        image
    }

    /// The full name of `name` on this registry, removed from the engine when the test ends.
    pub fn image(&mut self, name: &str) -> String {
        let image = format!("{}/{name}", self.host);
        self.images.push(image.clone());
        image
    }

    /// `docker push`; returns the manifest digest it reports.
    pub fn push(&self, image: &str) -> String {
        let out = self.docker_ok(&["push", image]);
        out.split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .unwrap_or_else(|| panic!("no digest in push output: {out}"))
            .to_string()
    }

    /// Removes the local copy, pulls it back and runs it.
    pub fn pull_and_run(&self, image: &str) -> String {
        self.docker_ok(&["rmi", "-f", image]);
        self.docker_ok(&["pull", "-q", image]);
        self.docker_ok(&["run", "--rm", "--network", "none", image])
    }

    pub fn skopeo(&self, args: &[&str]) -> Output {
        let creds = format!("tester:{}", self.server.token);
        let (verb, rest) = args.split_first().expect("verb");
        let mut cmd = Command::new("skopeo");
        cmd.arg(verb);
        // `copy` takes TLS and credentials per side.
        if *verb == "copy" {
            cmd.args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                .args(["--src-creds", &creds, "--dest-creds", &creds]);
        } else {
            cmd.args(["--tls-verify=false", "--creds", &creds]);
        }
        cmd.args(rest).output().expect("skopeo runs")
    }

    pub fn skopeo_ok(&self, args: &[&str]) -> String {
        let out = self.skopeo(args);
        assert!(out.status.success(), "skopeo {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `curl` against the server with the admin token as Basic credentials;
    /// returns (status, headers, body).
    pub fn curl(&self, method: &str, path: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
        let headers = tempfile::NamedTempFile::new().expect("headers file");
        // The registry takes Basic credentials, the API a bearer token.
        let auth = if path.starts_with("/api/") {
            format!("Authorization: Bearer {}", self.server.token)
        } else {
            format!(
                "Authorization: Basic {}",
                base64_of(&format!("tester:{}", self.server.token))
            )
        };
        let out = Command::new("curl")
            .args(["-s", "-X", method, "-H", &auth])
            .args([
                "-D",
                &headers.path().to_string_lossy(),
                "-o",
                "-",
                "-w",
                "\n%{http_code}",
            ])
            .args(extra)
            .arg(format!("{}{path}", self.server.url))
            .output()
            .expect("curl");
        let mut body = out.stdout;
        let split = body.iter().rposition(|b| *b == b'\n').expect("status line");
        let status = String::from_utf8_lossy(&body[split + 1..])
            .trim()
            .parse()
            .expect("status");
        body.truncate(split);
        // Header names are case-insensitive: lowercase them, keep the values.
        let headers = std::fs::read_to_string(headers.path())
            .expect("headers")
            .lines()
            .map(|l| match l.split_once(": ") {
                Some((name, value)) => format!("{}: {value}\n", name.to_lowercase()),
                None => format!("{l}\n"),
            })
            .collect();
        (status, headers, body)
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.server.data_dir.join("registry")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for image in &self.images {
            let _ = Command::new("docker")
                .args(["rmi", "-f", image])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

pub fn require_skopeo() {
    let found = Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "the registry tests drive skopeo: run scripts/test, which installs it"
    );
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Files and bytes in the blob store (`registry/sha256`).
pub fn stored_blobs(root: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut bytes = 0;
    let Ok(dirs) = std::fs::read_dir(root.join("sha256")) else {
        return (0, 0);
    };
    for dir in dirs.flatten() {
        for file in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            count += 1;
            bytes += file.metadata().expect("meta").len();
        }
    }
    (count, bytes)
}

pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("sha256").join(&hex[..2]).join(hex)
}

/// A unique payload, so that no two tests (or runs) share layers.
pub fn unique(label: &str) -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{label} {nanos} {}\n", std::process::id()).into_bytes()
}

pub fn header(headers: &str, name: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or("")
        .trim()
        .to_string()
}

pub fn put_blob(reg: &Registry, name: &str, content: &[u8]) -> String {
    let digest = sha256(content);
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), content).expect("write");
    let (status, _, body) = reg.curl(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={digest}"),
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.path().display()),
        ],
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    digest
}

pub fn put_manifest(
    reg: &Registry,
    name: &str,
    reference: &str,
    media_type: &str,
    body: &str,
) -> (u16, String, Vec<u8>) {
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), body).expect("write");
    reg.curl(
        "PUT",
        &format!("/v2/{name}/manifests/{reference}"),
        &[
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.path().display()),
        ],
    )
}
