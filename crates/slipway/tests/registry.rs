//! The artifact repository through real clients: `docker push/pull`,
//! `skopeo copy/inspect/delete` and `curl` against a real server, with the
//! blob store checked on disk.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::registry::{
    Registry, blob_path, header, put_blob, put_manifest, sha256, stored_blobs, text, unique,
};
use common::server::ServerProcess;

#[test]
fn docker_and_skopeo_push_pull_copy_inspect_and_delete() {
    let mut reg = Registry::start();
    let image = reg.build(
        "ci/hello:1",
        &[("greeting", &unique("hello")), ("second", &unique("layer"))],
    );
    let digest = reg.push(&image);
    let output = reg.pull_and_run(&image);
    assert!(
        output.starts_with("hello "),
        "the pulled image runs: {output}"
    );

    let inspected: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", &format!("docker://{image}")]))
            .expect("JSON");
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(
        inspected["Layers"].as_array().map(Vec::len),
        Some(3),
        "base + two COPY layers"
    );

    let copy = reg.image("ci/copy:1");
    reg.skopeo_ok(&[
        "copy",
        &format!("docker://{image}"),
        &format!("docker://{copy}"),
    ]);
    let copied: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", &format!("docker://{copy}")]))
            .expect("JSON");
    assert_eq!(
        copied["Digest"],
        digest.as_str(),
        "skopeo copies the manifest as it is"
    );
    reg.skopeo_ok(&["delete", &format!("docker://{copy}")]);
    let gone = reg.skopeo(&["inspect", &format!("docker://{copy}")]);
    assert!(!gone.status.success(), "deleted: {}", text(&gone));
    // The original is untouched by deleting the copy.
    assert_eq!(reg.pull_and_run(&image), output);
}

#[test]
fn release_tags_never_move_and_promotion_writes_no_blob_bytes() {
    let mut reg = Registry::start();
    let first = reg.build("ci/app:1", &[("v", &unique("first"))]);
    let first_digest = reg.push(&first);
    let second = reg.build("ci/app:2", &[("v", &unique("second"))]);
    reg.push(&second);

    let before = stored_blobs(&reg.blobs_dir());
    let source = format!("ci/app@{first_digest}");
    let promoted = reg.ok(&[
        "promote",
        &source,
        "--to",
        "release",
        "--tag",
        "1.0",
        "--reason",
        "QA signed off",
    ]);
    assert!(promoted.contains("promoted"), "{promoted}");
    assert_eq!(
        stored_blobs(&reg.blobs_dir()),
        before,
        "promotion wrote no blob bytes"
    );
    let again = reg.ok(&["promote", &source, "--to", "release", "--tag", "1.0"]);
    assert!(again.contains("nothing changed"), "idempotent: {again}");

    let released = reg.image("release/app:1.0");
    let output = reg.pull_and_run(&released);
    assert!(output.starts_with("first "), "{output}");
    let inspected: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", &format!("docker://{released}")]))
            .expect("JSON");
    assert_eq!(
        inspected["Digest"],
        first_digest.as_str(),
        "same digest in release"
    );

    // Moving the tag, even as admin, is refused with a clear reason.
    reg.docker_ok(&["tag", &second, &released]);
    let out = reg
        .docker(&["push", &released])
        .output()
        .expect("docker push");
    assert!(!out.status.success());
    assert!(text(&out).contains("never move"), "{}", text(&out));
    // Promoting another image onto the tag is refused the same way.
    let second_digest = reg.push(&second);
    let out = reg.server.cli(&[
        "promote",
        &format!("ci/app@{second_digest}"),
        "--to",
        "release",
        "--tag",
        "1.0",
    ]);
    assert!(
        !out.status.success() && text(&out).contains("never move"),
        "{}",
        text(&out)
    );

    // A developer may promote but not push to the release repository.
    let developer = reg
        .ok(&["token", "create", "dev", "--role", "developer"])
        .trim()
        .to_string();
    reg.login(&developer);
    let direct = reg.image("release/app:9");
    reg.docker_ok(&["tag", &second, &direct]);
    let out = reg
        .docker(&["push", &direct])
        .output()
        .expect("docker push");
    assert!(!out.status.success(), "a developer cannot push to release");

    let history: serde_json::Value = serde_json::from_slice(
        &reg.curl(
            "GET",
            &format!("/api/v1/promotions?image=app&digest={first_digest}"),
            &[],
        )
        .2,
    )
    .expect("JSON");
    let history = history.as_array().expect("list");
    assert_eq!(history.len(), 1, "one promotion recorded: {history:?}");
    assert_eq!(history[0]["reason"], "QA signed off");
    assert_eq!(history[0]["from_repo"], "ci");
    assert_eq!(history[0]["promoted_by"], "admin");
}

#[test]
fn a_wrong_digest_is_refused_and_leaves_nothing_behind() {
    let reg = Registry::start();
    let body = b"these bytes are not what the digest says";
    let wrong = sha256(b"something else entirely");
    let (status, _, answer) = reg.curl(
        "POST",
        &format!("/v2/ci/blobs/blobs/uploads/?digest={wrong}"),
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &String::from_utf8_lossy(body),
        ],
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("DIGEST_INVALID"));
    assert_eq!(stored_blobs(&reg.blobs_dir()).0, 0, "no blob stored");
    let leftovers = std::fs::read_dir(reg.blobs_dir().join("uploads")).map_or(0, |d| d.count());
    assert_eq!(leftovers, 0, "no upload file left");
    let (status, _, _) = reg.curl(
        "HEAD",
        &format!("/v2/ci/blobs/blobs/{}", sha256(body)),
        &["-I"],
    );
    assert_eq!(status, 404);
}

#[test]
fn chunked_uploads_ranges_manifests_tags_and_referrers_follow_the_spec() {
    let reg = Registry::start();
    // Chunked upload: in order, then out of order (416), then finished.
    let (status, headers, _) = reg.curl("POST", "/v2/ci/parts/blobs/uploads/", &[]);
    assert_eq!(status, 202);
    let location = header(&headers, "location");
    let chunk = |range: &str, data: &str| {
        reg.curl(
            "PATCH",
            &location,
            &[
                "-H",
                &format!("Content-Range: {range}"),
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                data,
            ],
        )
    };
    let (status, headers, _) = chunk("0-4", "hello");
    assert_eq!(
        (status, header(&headers, "range")),
        (202, "0-4".to_string())
    );
    let (status, headers, _) = chunk("10-14", "world");
    assert_eq!(status, 416, "a gap is refused");
    assert_eq!(
        header(&headers, "range"),
        "0-4",
        "and the client is told where to resume"
    );
    let (status, headers, _) = chunk("5-10", " world");
    assert_eq!(
        (status, header(&headers, "range")),
        (202, "0-10".to_string())
    );
    let (status, headers, _) = reg.curl("GET", &location, &[]);
    assert_eq!(
        (status, header(&headers, "range")),
        (204, "0-10".to_string())
    );
    let layer = sha256(b"hello world");
    let (status, headers, _) = reg.curl("PUT", &format!("{location}?digest={layer}"), &[]);
    assert_eq!(status, 201);
    assert_eq!(header(&headers, "docker-content-digest"), layer);

    // Ranged reads.
    let blob = format!("/v2/ci/parts/blobs/{layer}");
    let (status, headers, body) = reg.curl("GET", &blob, &["-H", "Range: bytes=6-10"]);
    assert_eq!((status, body.as_slice()), (206, &b"world"[..]));
    assert_eq!(header(&headers, "content-range"), "bytes 6-10/11");
    let (status, _, _) = reg.curl("GET", &blob, &["-H", "Range: bytes=50-"]);
    assert_eq!(status, 416);

    // A config blob, an image manifest pushed under several tags, and an artifact referring to it.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = put_blob(&reg, "ci/parts", config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#,
        config.len()
    );
    let manifest_digest = sha256(manifest.as_bytes());
    for tag in ["a", "b", "c", "d", "e"] {
        let (status, headers, body) = put_manifest(
            &reg,
            "ci/parts",
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        assert_eq!(header(&headers, "docker-content-digest"), manifest_digest);
    }
    let (status, headers, body) = reg.curl(
        "GET",
        "/v2/ci/parts/manifests/c",
        &["-H", "Accept: application/vnd.oci.image.manifest.v1+json"],
    );
    assert_eq!((status, body.as_slice()), (200, manifest.as_bytes()));
    assert_eq!(
        header(&headers, "content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(header(&headers, "docker-content-digest"), manifest_digest);

    // Tag listing pages with a Link to the next page.
    let (_, headers, body) = reg.curl("GET", "/v2/ci/parts/tags/list?n=2", &[]);
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(page["tags"], serde_json::json!(["a", "b"]));
    assert!(header(&headers, "link").contains("last=b"), "{headers}");
    let (_, headers, body) = reg.curl("GET", "/v2/ci/parts/tags/list?n=2&last=d", &[]);
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(page["tags"], serde_json::json!(["e"]));
    assert_eq!(header(&headers, "link"), "", "no next page");

    // A manifest that references what the repository lacks is refused.
    let missing = manifest.replace(&layer, &sha256(b"never pushed"));
    let (status, _, body) = put_manifest(
        &reg,
        "ci/parts",
        "broken",
        "application/vnd.oci.image.manifest.v1+json",
        &missing,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_BLOB_UNKNOWN"));
    // Too large a manifest: 413.
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let (status, _, _) = put_manifest(
        &reg,
        "ci/parts",
        "huge",
        "application/vnd.oci.image.manifest.v1+json",
        &huge,
    );
    assert_eq!(status, 413);

    // Referrers: an artifact whose subject is the manifest.
    let empty = put_blob(&reg, "ci/parts", b"{}");
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{}}},"annotations":{{"org.example":"sbom"}}}}"#,
        manifest.len()
    );
    let artifact_digest = sha256(artifact.as_bytes());
    let (status, headers, _) = put_manifest(
        &reg,
        "ci/parts",
        &artifact_digest,
        "application/vnd.oci.image.manifest.v1+json",
        &artifact,
    );
    assert_eq!(status, 201);
    assert_eq!(header(&headers, "oci-subject"), manifest_digest);
    let referrers = |query: &str| {
        let (status, headers, body) = reg.curl(
            "GET",
            &format!("/v2/ci/parts/referrers/{manifest_digest}{query}"),
            &[],
        );
        assert_eq!(status, 200);
        (
            headers,
            serde_json::from_slice::<serde_json::Value>(&body).expect("JSON"),
        )
    };
    let (_, all) = referrers("");
    assert_eq!(all["manifests"][0]["digest"], artifact_digest.as_str());
    assert_eq!(
        all["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    assert_eq!(all["manifests"][0]["annotations"]["org.example"], "sbom");
    let (headers, filtered) = referrers("?artifactType=application/vnd.example.sig");
    assert_eq!(filtered["manifests"], serde_json::json!([]));
    assert_eq!(header(&headers, "oci-filters-applied"), "artifactType");

    // An index over the manifest (OCI and Docker list types alike), promoted with its child.
    for (tag, media_type) in [
        ("multi", "application/vnd.oci.image.index.v1+json"),
        (
            "list",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        ),
    ] {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            manifest.len()
        );
        let (status, _, body) = put_manifest(&reg, "ci/parts", tag, media_type, &index);
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        let (status, headers, body) =
            reg.curl("GET", &format!("/v2/ci/parts/manifests/{tag}"), &[]);
        assert_eq!((status, body), (200, index.clone().into_bytes()));
        assert_eq!(header(&headers, "content-type"), media_type);
    }
    let index_digest = sha256(
        reg.curl("GET", "/v2/ci/parts/manifests/multi", &[])
            .2
            .as_slice(),
    );
    reg.ok(&[
        "promote",
        &format!("ci/parts@{index_digest}"),
        "--to",
        "release",
        "--tag",
        "1",
    ]);
    let (status, _, _) = reg.curl(
        "GET",
        &format!("/v2/release/parts/manifests/{manifest_digest}"),
        &[],
    );
    assert_eq!(status, 200, "the index's child came along");
    let (status, _, body) = reg.curl("GET", &format!("/v2/release/parts/blobs/{layer}"), &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"hello world"[..]),
        "and its layer"
    );
    // An index over a manifest the image lacks is refused.
    let orphan = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}]}}"#,
        sha256(b"no such manifest")
    );
    let (status, _, _) = put_manifest(
        &reg,
        "ci/parts",
        "orphan",
        "application/vnd.oci.image.index.v1+json",
        &orphan,
    );
    assert_eq!(status, 400);

    // Cross-repository mount, then delete by digest takes the tags with it.
    let (status, _, _) = reg.curl(
        "POST",
        &format!("/v2/ci/other/blobs/uploads/?mount={layer}&from=ci/parts"),
        &[],
    );
    assert_eq!(status, 201, "mounted without uploading");
    let (status, _, _) = reg.curl(
        "DELETE",
        &format!("/v2/ci/parts/manifests/{manifest_digest}"),
        &[],
    );
    assert_eq!(status, 202);
    let (status, _, body) = reg.curl("GET", "/v2/ci/parts/manifests/a", &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_UNKNOWN"));

    // Errors use the spec's shape; anonymous requests get a token challenge.
    let out = Command::new("curl")
        .args([
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("{}/v2/ci/parts/tags/list", reg.server.url),
        ])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(
        head.contains("www-authenticate: bearer realm=\"http://127.0.0.1:"),
        "{head}"
    );
    assert!(
        head.contains("scope=\"repository:ci/parts:pull\""),
        "{head}"
    );
}

#[test]
fn a_server_killed_during_a_push_serves_every_earlier_image_and_the_push_then_succeeds() {
    let mut reg = Registry::start();
    let earlier = reg.build("ci/earlier:1", &[("e", &unique("earlier"))]);
    reg.push(&earlier);
    // A layer large enough that the push is still streaming when the server dies.
    let mut big = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open("/dev/urandom").expect("urandom"),
            48 << 20,
        ),
        &mut big,
    )
    .expect("random bytes");
    let large = reg.build("ci/large:1", &[("big", &big)]);
    let mut push = reg
        .docker(&["push", &large])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("push");
    let uploads = reg.blobs_dir().join("uploads");
    let start = Instant::now();
    loop {
        let streaming = std::fs::read_dir(&uploads)
            .map(|d| {
                d.flatten()
                    .any(|f| f.metadata().is_ok_and(|m| m.len() > 1 << 20))
            })
            .unwrap_or(false);
        if streaming {
            break;
        }
        if push.try_wait().expect("push").is_some() {
            panic!("the push ended before the server could be killed mid-upload");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no upload began");
        std::thread::sleep(Duration::from_millis(5));
    }
    reg.server.kill9();
    // The client would retry for a while; the test only needs it gone.
    let _ = push.kill();
    let _ = push.wait();

    let listen = reg.host.clone();
    let data = reg.server.data_dir.clone();
    reg.server = ServerProcess::start_on(&data, &listen, &["--workers", "0"]);
    assert!(reg.pull_and_run(&earlier).starts_with("earlier "));
    reg.push(&large);
    reg.docker_ok(&["rmi", "-f", &large]);
    reg.docker_ok(&["pull", "-q", &large]);
}

#[test]
fn garbage_collection_during_pushes_frees_the_unreferenced_and_loses_nothing() {
    let mut reg = Registry::start();
    // Garbage: an image whose manifest is deleted leaves its own layer unreferenced.
    let doomed = reg.build("ci/doomed:1", &[("d", &unique("doomed"))]);
    reg.push(&doomed);
    let raw: serde_json::Value =
        serde_json::from_str(&reg.skopeo_ok(&["inspect", "--raw", &format!("docker://{doomed}")]))
            .expect("JSON");
    let doomed_layer = raw["layers"][1]["digest"]
        .as_str()
        .expect("own layer")
        .to_string();
    reg.skopeo_ok(&["delete", &format!("docker://{doomed}")]);
    let kept = reg.build("ci/kept:1", &[("k", &unique("kept"))]);
    reg.push(&kept);
    let garbage_at = Instant::now();

    // Pushes run on another thread while collections run here.
    let pending: Vec<String> = (0..4)
        .map(|i| {
            reg.build(
                &format!("ci/during:{i}"),
                &[("p", &unique(&format!("during {i}")))],
            )
        })
        .collect();
    let grace = Duration::from_secs(2);
    while garbage_at.elapsed() <= grace {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pusher = {
        let config = reg.docker_config.path().to_path_buf();
        let pending = pending.clone();
        std::thread::spawn(move || {
            for image in &pending {
                let out = Command::new("docker")
                    .args(["push", image])
                    .env("DOCKER_CONFIG", &config)
                    .output()
                    .expect("docker push");
                assert!(out.status.success(), "push during gc: {}", text(&out));
            }
        })
    };
    let mut freed = 0;
    let mut collections = 0;
    while !pusher.is_finished() || collections == 0 {
        let report: serde_json::Value =
            serde_json::from_str(&reg.ok(&["gc", "--grace", "2s", "--json"])).expect("JSON");
        freed += report["blobs_freed"].as_u64().expect("count");
        collections += 1;
    }
    pusher
        .join()
        .expect("every push succeeded while collecting");
    assert!(freed >= 1, "the unreferenced layer was freed");
    assert!(
        !blob_path(&reg.blobs_dir(), &doomed_layer).exists(),
        "its file is gone"
    );
    assert!(reg.pull_and_run(&kept).starts_with("kept "));
    for (i, image) in pending.iter().enumerate() {
        assert!(
            reg.pull_and_run(image).starts_with(&format!("during {i} ")),
            "{image}"
        );
    }
    let dry: serde_json::Value =
        serde_json::from_str(&reg.ok(&["gc", "--grace", "0s", "--dry-run", "--json"]))
            .expect("JSON");
    assert_eq!(
        dry["blobs_freed"], 0,
        "nothing referenced would ever go: {dry}"
    );
}
