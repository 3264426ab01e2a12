//! Decision points and what keeps an environment up: approvals by group,
//! rejections with a reason, expiry, a crashed version restarted, and a server
//! killed outright bringing every environment back on its URL.

mod common;

use std::time::Duration;

use common::server::{ServerProcess, git};
use common::service::{
    ServiceRepo, TARGET, build_job, cli_as, environment, get, refused, status, succeeded, token,
};

#[test]
fn decision_points_take_the_right_people_expire_and_crashed_versions_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = format!("{{ local: {{ command: ./{TARGET} }} }}");
    let pipeline = build_job(&format!(
        r#"release:
  config: {{ GREETING: Hey }}
environments:
  dev:
    branch: main
    target: {local}
    health: {{ http: /healthz }}
  prod:
    from: dev
    target: {local}
    config: {{ GREETING: Hallo }}
    secrets: [GREETING]
    health: {{ http: /healthz }}
    approval: {{ group: release-managers }}
  qa:
    from: dev
    target: {local}
    approval: {{ expires: 1s }}
"#
    ));
    let repo = ServiceRepo::new(tmp.path(), &pipeline);
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(
        &data,
        &[
            common::service::SHARED_TARGET_FLAG,
            &common::service::shared_target(),
        ],
    );
    // `sneaky` is protected too (only protected branches make releases), so
    // its release shows that even a reviewed side branch cannot loosen prod.
    succeeded(&server.cli(&[
        "project",
        "add",
        "gates",
        "--git",
        repo.bare.to_str().expect("utf8"),
        "--branch",
        "main",
        "--branch",
        "sneaky",
    ]));
    let bob = token(&server, "bob", "developer", "bob@example.com");
    server.set_secret("gates", "GREETING", "Howdy");
    let out = server.cli(&[
        "token",
        "create",
        "dave",
        "--role",
        "viewer",
        "--email",
        "dave@example.com",
        "--group",
        "release-managers",
    ]);
    let dave = succeeded(&out).trim().to_string();
    succeeded(&server.cli(&["trigger", "gates", "--branch", "main", "--wait"]));
    server.wait_until("dev is healthy", Duration::from_secs(60), || {
        environment(&status(&server, "gates"), "dev")["health"] == "healthy"
    });

    // prod: only the group decides; a rejection needs a reason.
    let promote = |server: &ServerProcess| {
        let text = succeeded(&server.cli(&[
            "promote-release",
            "-p",
            "gates",
            "--from",
            "dev",
            "--to",
            "prod",
        ]));
        assert!(
            text.contains("awaiting_approval") && text.contains("group release-managers"),
            "{text}"
        );
        environment(&status(server, "gates"), "prod")["latest"]["id"].to_string()
    };
    let id = promote(&server);
    refused(
        &cli_as(&server, &bob, &["approve", &id]),
        "needs group release-managers",
    );
    refused(
        &cli_as(&server, &dave, &["reject", &id, "-m", ""]),
        "needs a comment",
    );
    succeeded(&cli_as(
        &server,
        &dave,
        &["reject", &id, "-m", "not during the audit"],
    ));
    let prod = environment(&status(&server, "gates"), "prod").clone();
    assert_eq!(prod["latest"]["state"], "rejected");
    assert!(prod["live"].is_null());
    let id = promote(&server);
    succeeded(&cli_as(
        &server,
        &dave,
        &["approve", &id, "-m", "audit done"],
    ));
    server.wait_until("prod is live", Duration::from_secs(30), || {
        !environment(&status(&server, "gates"), "prod")["live"].is_null()
    });
    // Configuration layers: release defaults, then the environment, then its secrets.
    let prod_url = environment(&status(&server, "gates"), "prod")["url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        get(&prod_url).as_deref(),
        Some("Howdy from hello-service 1\n")
    );

    // A push on another branch cannot declare prod its own and skip the
    // decision point: where prod takes releases from and its approvals come
    // from what prod runs, and a release can only tighten them.
    let sneaky = pipeline
        .replace(
            "    from: dev\n    target",
            "    branch: sneaky\n    target",
        )
        .replace("    approval: { group: release-managers }\n", "");
    assert_ne!(sneaky, pipeline);
    git(&repo.work, &["checkout", "-q", "-b", "sneaky"]);
    repo.write(".slipway.yml", &sneaky);
    repo.commit("Mallory", "mallory@example.com", "prod takes my branch");
    git(&repo.work, &["push", "-q", "origin", "sneaky"]);
    succeeded(&server.cli(&["trigger", "gates", "--branch", "sneaky", "--wait"]));
    server.wait_until("release 2 exists", Duration::from_secs(30), || {
        server
            .json(&["releases", "-p", "gates"])
            .to_string()
            .contains("\"version\":\"2\"")
    });
    let prod = environment(&status(&server, "gates"), "prod").clone();
    assert_eq!(prod["live"]["release"], "1", "{prod}");
    assert_eq!(
        prod["latest"],
        serde_json::Value::Null,
        "no deployment was asked for: {prod}"
    );
    // Nor is a release that never ran there a rollback.
    refused(
        &server.cli(&["rollback", "-p", "gates", "prod", "--to", "2"]),
        "never ran in prod",
    );
    // Asking for it properly meets the decision point, where four-eyes wants to know who decides.
    succeeded(&server.cli(&["deploy", "-p", "gates", "prod", "2"]));
    let id = environment(&status(&server, "gates"), "prod")["latest"]["id"].to_string();
    let out = server.cli(&[
        "token",
        "create",
        "erin",
        "--role",
        "viewer",
        "--group",
        "release-managers",
    ]);
    let erin = succeeded(&out).trim().to_string();
    // A token of no person (no user, no email) cannot approve: approvals count people.
    refused(
        &cli_as(&server, &erin, &["approve", &id]),
        "belongs to nobody",
    );
    succeeded(&cli_as(
        &server,
        &dave,
        &["reject", &id, "-m", "not from a side branch"],
    ));

    // qa: a decision point expires.
    succeeded(&server.cli(&[
        "promote-release",
        "-p",
        "gates",
        "--from",
        "dev",
        "--to",
        "qa",
    ]));
    let qa_id = environment(&status(&server, "gates"), "qa")["latest"]["id"].to_string();
    server.wait_until("qa's decision expires", Duration::from_secs(10), || {
        environment(&status(&server, "gates"), "qa")["latest"]["state"] == "expired"
    });
    refused(
        &cli_as(&server, &bob, &["approve", &qa_id]),
        "not waiting for approval",
    );
    let audit = server.json(&["audit", "-p", "gates"]).to_string();
    for needle in [
        "\"action\":\"reject\"",
        "not during the audit",
        "\"action\":\"approve\"",
        "\"action\":\"expire\"",
    ] {
        assert!(audit.contains(needle), "{needle} in {audit}");
    }

    // A crashed version is restarted; the environment shows unhealthy meanwhile.
    let url = environment(&status(&server, "gates"), "dev")["url"]
        .as_str()
        .expect("url")
        .to_string();
    let pid = std::fs::read_dir(data.join("deploy"))
        .expect("deploy dir")
        .flatten()
        .flat_map(|p| {
            std::fs::read_dir(p.path().join("dev"))
                .into_iter()
                .flatten()
                .flatten()
        })
        .find(|f| f.path().extension().is_some_and(|e| e == "pid"))
        .map(|f| std::fs::read_to_string(f.path()).expect("pid"))
        .expect("a pid file for dev");
    let pid: i32 = pid.trim().parse().expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    // The restart comes within 100 ms, quicker than a status poll: the audit
    // log keeps the turn to unhealthy and back.
    server.wait_until(
        "dev is restarted and healthy",
        Duration::from_secs(20),
        || {
            let audit = server.json(&["audit", "-p", "gates"]);
            let turns: Vec<_> = audit
                .as_array()
                .expect("entries")
                .iter()
                .rev()
                .filter(|e| e["subject"] == "environment dev")
                .map(|e| format!("{} {}", e["action"], e["detail"]))
                .collect();
            turns.len() >= 2
                && turns[0].contains("unhealthy")
                && turns[0].contains("exited")
                && turns[1].starts_with("\"healthy\"")
        },
    );
    assert_eq!(
        environment(&status(&server, "gates"), "dev")["health"],
        "healthy"
    );
    assert_eq!(get(&url).as_deref(), Some("Hey from hello-service 1\n"));

    // A server killed outright brings every environment back on its URL.
    server.kill9();
    let server = ServerProcess::start(
        &data,
        &[
            common::service::SHARED_TARGET_FLAG,
            &common::service::shared_target(),
        ],
    );
    server.wait_until("dev answers again", Duration::from_secs(30), || {
        get(&url).is_some()
    });
    assert_eq!(get(&url).as_deref(), Some("Hey from hello-service 1\n"));
    server.wait_until("prod answers again", Duration::from_secs(30), || {
        get(&prod_url).is_some()
    });
}
