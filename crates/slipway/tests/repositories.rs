//! The artifact repository around the OCI API: raw files, proxies of other
//! registries, pipelines pushing their images, retention, and repositories
//! from the config file, each against a real server with real clients.

mod common;

use std::process::Command;

use common::registry::{Registry, header, put_blob, put_manifest, sha256, text, unique};
use common::server::ServerProcess;

#[test]
fn raw_repositories_store_verify_list_and_delete_files() {
    let reg = Registry::start();
    reg.ok(&["repo", "add", "files", "--kind", "raw"]);
    let content = unique("tool binary");
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), &content).expect("write");
    let upload = format!("@{}", file.path().display());
    let hex = sha256(&content).trim_start_matches("sha256:").to_string();

    let (status, headers, _) = reg.curl(
        "PUT",
        "/raw/files/tools/v1/tool.bin",
        &["--data-binary", &upload],
    );
    assert_eq!(status, 201);
    assert_eq!(header(&headers, "x-checksum-sha256"), hex);
    let (status, headers, body) = reg.curl("GET", "/raw/files/tools/v1/tool.bin", &[]);
    assert_eq!((status, body), (200, content.clone()));
    assert_eq!(header(&headers, "etag"), format!("\"{hex}\""));

    // A checksum that does not match is refused and the stored file stays.
    let (status, _, body) = reg.curl(
        "PUT",
        "/raw/files/tools/v1/tool.bin",
        &[
            "--data-binary",
            "other bytes",
            "-H",
            &format!("X-Checksum-Sha256: {hex}"),
        ],
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("DIGEST_INVALID"));
    assert_eq!(
        reg.curl("GET", "/raw/files/tools/v1/tool.bin", &[]).2,
        content
    );

    reg.curl(
        "PUT",
        "/raw/files/tools/README",
        &["--data-binary", "read me"],
    );
    let listing = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&reg.curl("GET", path, &[]).2).expect("JSON listing")
    };
    let top = listing("/raw/files/tools/");
    let names: Vec<&str> = top["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["README", "v1/"]);
    let v1 = listing("/raw/files/tools/v1/");
    assert_eq!(v1["entries"][0]["sha256"], hex.as_str());
    assert_eq!(v1["entries"][0]["size"], content.len());

    let (status, _, _) = reg.curl("GET", "/raw/files/a/../etc/passwd", &["--path-as-is"]);
    assert!(status == 400 || status == 404, "no traversal: {status}");
    let anonymous = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{}/raw/files/tools/README", reg.server.url),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");

    let (status, _, _) = reg.curl("DELETE", "/raw/files/tools/v1/tool.bin", &[]);
    assert_eq!(status, 204);
    assert_eq!(reg.curl("GET", "/raw/files/tools/v1/tool.bin", &[]).0, 404);
}

#[test]
fn a_proxy_repository_caches_pulls_rechecks_tags_and_serves_through_an_upstream_outage() {
    let mut upstream = Registry::start();
    upstream.ok(&["repo", "add", "public", "--kind", "oci", "--anonymous-pull"]);
    let original = upstream.build("public/app:1", &[("v", &unique("original"))]);
    upstream.push(&original);

    let mut reg = Registry::start();
    // TTL 0: every pull of a tag asks the upstream again while it answers.
    reg.ok(&[
        "repo",
        "add",
        "mirror",
        "--kind",
        "oci-proxy",
        "--upstream",
        &upstream.server.url,
        "--ttl",
        "0",
    ]);
    let mirrored = reg.image("mirror/public/app:1");
    assert!(
        reg.pull_and_run(&mirrored).starts_with("original "),
        "pulled through the proxy"
    );

    // The upstream tag moves: the proxy notices.
    let moved = upstream.build("public/app:1", &[("v", &unique("moved"))]);
    let moved_digest = upstream.push(&moved);
    assert!(
        reg.pull_and_run(&mirrored).starts_with("moved "),
        "the tag was checked again"
    );
    let cached: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", &format!("docker://{mirrored}")]))
            .expect("JSON");
    assert_eq!(cached["Digest"], moved_digest.as_str());

    // The upstream goes away: what is cached is still served.
    upstream.server.kill9();
    assert!(
        reg.pull_and_run(&mirrored).starts_with("moved "),
        "served from the cache"
    );
    let missing = reg.image("mirror/public/other:1");
    let out = reg
        .docker(&["pull", &missing])
        .output()
        .expect("docker pull");
    assert!(
        !out.status.success(),
        "nothing cached, upstream down: the pull fails"
    );

    // Nobody pushes into a proxy.
    let (status, _, body) = reg.curl("POST", "/v2/mirror/public/app/blobs/uploads/", &[]);
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn a_pipeline_pushes_its_image_labelled_and_the_run_records_the_digests() {
    let reg = Registry::start_with(&["--workers", "1"]);
    let root = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  image:\n    steps:\n      - run: echo built > app.txt\n    image_build:\n      push: ci/demo\n";
    let remote = common::server::Remote::new(root.path(), pipeline);
    remote.commit(
        "Dockerfile",
        &format!(
            "FROM {}\nCOPY app.txt /app.txt\nCMD [\"cat\", \"/app.txt\"]\n",
            common::BUSYBOX
        ),
        "image",
    );
    remote.push();
    let commit = {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(&remote.work)
            .output()
            .expect("git");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    reg.server.add_project(&remote, &[]);
    let out = reg.server.cli(&["trigger", "demo", "--wait"]);
    assert!(out.status.success(), "the run succeeds: {}", text(&out));

    let status = reg.server.run_status("demo/1");
    let images = status["images"].as_array().expect("images");
    let mut references: Vec<&str> = images
        .iter()
        .filter_map(|i| i["reference"].as_str())
        .collect();
    // Pushed in the same millisecond: the order is not the point.
    references.sort_unstable();
    let short = &commit[..12];
    let mut expected = [
        format!("{}/ci/demo:1", reg.host),
        format!("{}/ci/demo:{short}", reg.host),
    ];
    expected.sort_unstable();
    assert_eq!(
        references, expected,
        "tagged with the run number and the short commit"
    );
    let digest = images[0]["digest"].as_str().expect("digest").to_string();
    assert!(digest.starts_with("sha256:"));
    assert_eq!(
        images[1]["digest"],
        digest.as_str(),
        "one image under both tags"
    );

    // What the run recorded is what the registry serves, labelled back to its origin.
    let name = format!("{}/ci/demo:1", reg.host);
    let inspected: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", &format!("docker://{name}")]))
            .expect("JSON");
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(inspected["Labels"]["slipway.project"], "demo");
    assert_eq!(inspected["Labels"]["slipway.commit"], commit.as_str());
    assert_eq!(inspected["Labels"]["slipway.run"], "1");
    assert_eq!(reg.pull_and_run(&name), "built\n");
    let _ = Command::new("docker")
        .args(["rmi", "-f", &name, &format!("{}/ci/demo:{short}", reg.host)])
        .output();

    // A job's credentials reach only its project's images, and never a release repository.
    for (number, target, expected) in [
        (2, "release/demo", "needs the admin role"),
        (3, "ci/other", "pushes only to images named after it"),
    ] {
        let changed = pipeline.replace("push: ci/demo", &format!("push: {target}"));
        remote.commit(".slipway.yml", &changed, target);
        remote.push();
        let out = reg.server.cli(&["trigger", "demo", "--wait"]);
        assert!(
            !out.status.success(),
            "pushing to {target} from a pipeline fails"
        );
        let status = reg.server.run_status(&format!("demo/{number}"));
        let job = &status["jobs"][0];
        assert_eq!(job["state"], "failed");
        let reason = job["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("cannot push") && reason.contains(expected),
            "{reason}"
        );
        assert_eq!(status["images"], serde_json::json!([]));
    }
}

/// An image manifest over one config blob of `content`, pushed as `name:tag`; returns its digest.
fn push_tiny_image(reg: &Registry, name: &str, tag: &str, content: &[u8]) -> String {
    let config = put_blob(reg, name, content);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[]}}"#,
        content.len()
    );
    let (status, _, body) = put_manifest(
        reg,
        name,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    sha256(manifest.as_bytes())
}

#[test]
fn retention_keeps_the_newest_tags_and_whatever_a_release_holds() {
    let reg = Registry::start();
    reg.ok(&[
        "repo",
        "add",
        "nightly",
        "--kind",
        "oci",
        "--keep-tags",
        "1",
    ]);
    let first = push_tiny_image(&reg, "nightly/app", "1", &unique("one"));
    push_tiny_image(&reg, "nightly/app", "2", &unique("two"));
    push_tiny_image(&reg, "nightly/app", "3", &unique("three"));
    reg.ok(&[
        "promote",
        &format!("nightly/app@{first}"),
        "--to",
        "release",
        "--tag",
        "1.0",
    ]);

    let report: serde_json::Value =
        serde_json::from_str(&reg.ok(&["gc", "--grace", "0s", "--json"])).expect("JSON");
    let retired: Vec<&str> = report["retired_tags"]
        .as_array()
        .expect("retired")
        .iter()
        .filter_map(|t| t["tag"].as_str())
        .collect();
    assert_eq!(retired, ["2"], "the newest stays, the released one stays");
    assert!(
        report["blobs_freed"].as_u64().expect("count") >= 2,
        "tag 2's manifest and config: {report}"
    );
    let (_, _, body) = reg.curl("GET", "/v2/nightly/app/tags/list", &[]);
    let tags: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(tags["tags"], serde_json::json!(["1", "3"]));
    let (status, _, _) = reg.curl("GET", &format!("/v2/release/app/manifests/{first}"), &[]);
    assert_eq!(status, 200, "the released image is intact");
}

#[test]
fn repositories_come_from_the_config_file_at_every_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("slipway.toml");
    let write = |policy: &str| {
        std::fs::write(
            &config,
            format!("[[repository]]\nname = \"shipped\"\nkind = \"oci\"\npolicy = \"{policy}\"\n"),
        )
        .expect("config")
    };
    write("ci");
    let data = tmp.path().join("data");
    let flags = ["--workers", "0", "--config", config.to_str().expect("utf8")];
    let mut server = ServerProcess::start(&data, &flags);
    let list = |server: &ServerProcess| {
        String::from_utf8_lossy(&server.cli(&["repo", "list"]).stdout).into_owned()
    };
    assert!(
        list(&server).contains("shipped              oci, policy ci"),
        "{}",
        list(&server)
    );
    server.kill9();
    write("release");
    let server = ServerProcess::start(&data, &flags);
    assert!(
        list(&server).contains("policy release"),
        "updated at restart: {}",
        list(&server)
    );

    // A bad entry stops the start with a message that names it.
    std::fs::write(
        &config,
        "[[repository]]\nname = \"Bad Name\"\nkind = \"oci\"\n",
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            tmp.path().join("other").to_str().expect("utf8"),
        ])
        .args(["--config", config.to_str().expect("utf8")])
        .output()
        .expect("server");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("repository `Bad Name` in the config file"),
        "{}",
        text(&out)
    );
}
