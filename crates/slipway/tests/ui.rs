//! The web UI in a real browser (Debian Chromium through chromedriver): log
//! in, start a run and watch a log line arrive live, approve a deployment,
//! roll an environment back and see it change. Every page is photographed
//! into `target/tmp/ui-screenshots/`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::browser::{browser, chromedriver, click, log_in_as, shot, wait_for_text};
use common::server::{PASSWORD, Remote, ServerProcess, git};
use common::service::{environment, status, succeeded};
use fantoccini::Locator;

/// A job that prints a line while the page is open, and a site for two environments.
const PIPELINE: &str = r#"jobs:
  site:
    steps:
      - echo "release page" > index.html
      - echo "first line"; sleep 2; echo "live-line-42"; sleep 3
    artifacts: [index.html]
environments:
  dev:
    branch: main
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
  prod:
    from: dev
    target: { local: { command: python3 -m http.server $PORT --bind 127.0.0.1 } }
    health: { http: /index.html }
    approval: { required: 1 }
"#;

#[test]
fn a_person_runs_watches_approves_and_rolls_back_in_the_browser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = Remote::new(tmp.path(), PIPELINE);
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    succeeded(&server.cli(&[
        "project",
        "add",
        "web",
        "--git",
        remote.bare.to_str().expect("utf8"),
    ]));
    add_user(&server, "ann", "developer", "ann@example.com");
    let (_driver, driver_url) = chromedriver();
    let base = server.url.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let c = browser(&driver_url, &tmp.path().join("chrome")).await;
        // Logging in: a wrong password is refused, the right one lands on the dashboard.
        c.goto(&format!("{base}/ui")).await.expect("open");
        assert!(
            c.current_url()
                .await
                .expect("url")
                .path()
                .starts_with("/ui/login")
        );
        shot(&c, "login").await;
        log_in_as(&c, "ann", "wrong").await;
        wait_for_text(&c, "#problem", "wrong password", Duration::from_secs(10)).await;
        log_in_as(&c, "ann", PASSWORD).await;
        wait_for_text(&c, "h1", "Dashboard", Duration::from_secs(10)).await;
        shot(&c, "dashboard").await;

        // Start a run; its second line arrives while the page is open.
        c.goto(&format!("{base}/ui/projects/web"))
            .await
            .expect("project");
        shot(&c, "project").await;
        click(&c, "trigger").await;
        wait_for_text(&c, "pre.log", "first line", Duration::from_secs(20)).await;
        let before = c.current_url().await.expect("url");
        wait_for_text(&c, "pre.log", "live-line-42", Duration::from_secs(20)).await;
        assert_eq!(
            c.current_url().await.expect("url"),
            before,
            "the line came without leaving the page"
        );
        let state = c
            .find(Locator::Id("run-state"))
            .await
            .expect("state")
            .text()
            .await
            .expect("text");
        // The badge is as the page was loaded: a live line shows the page was not reloaded.
        assert!(
            state == "running" || state == "queued",
            "the line arrived live, before the run ended (state {state})"
        );
        shot(&c, "run").await;
        wait_for_text(&c, "#run-state", "succeeded", Duration::from_secs(30)).await;
        c.goto(&format!("{base}/ui/jobs/1/log"))
            .await
            .expect("log page");
        wait_for_text(&c, "pre.log", "live-line-42", Duration::from_secs(5)).await;
        shot(&c, "log").await;
    });

    // A second release, then prod asks for a decision.
    server.wait_until("dev runs release 1", Duration::from_secs(30), || {
        environment(&status(&server, "web"), "dev")["live"]["release"] == "1"
    });
    remote.commit("CHANGES", "two\n", "a second release");
    git(&remote.work, &["push", "-q", "origin", "main"]);
    succeeded(&server.cli(&["trigger", "web", "--branch", "main", "--wait"]));
    server.wait_until("dev runs release 2", Duration::from_secs(30), || {
        environment(&status(&server, "web"), "dev")["live"]["release"] == "2"
    });
    succeeded(&server.cli(&[
        "promote-release",
        "-p",
        "web",
        "--from",
        "dev",
        "--to",
        "prod",
    ]));
    let pending = environment(&status(&server, "web"), "prod")["latest"]["id"].to_string();

    runtime.block_on(async {
        let c = browser(&driver_url, &tmp.path().join("chrome")).await;
        c.goto(&format!("{base}/ui/projects/web/environments/prod"))
            .await
            .expect("prod");
        shot(&c, "environment-waiting").await;
        c.find(Locator::Id(&format!("approve-{pending}")))
            .await
            .expect("approve button")
            .click()
            .await
            .expect("click");
        wait_for_text(&c, "#live-release", "2", Duration::from_secs(30)).await;
        shot(&c, "environment-approved").await;

        // One click (and a confirmation) rolls dev back to release 1.
        c.goto(&format!("{base}/ui/projects/web/environments/dev"))
            .await
            .expect("dev");
        wait_for_text(&c, "#live-release", "2", Duration::from_secs(5)).await;
        click(&c, "rollback").await;
        c.accept_alert().await.expect("the confirmation");
        wait_for_text(&c, "#live-release", "1", Duration::from_secs(30)).await;
        shot(&c, "environment-rolled-back").await;

        for (name, path) in [
            ("release", "/ui/projects/web/releases/2"),
            ("registry", "/ui/registry"),
            ("metrics", "/ui/projects/web/metrics"),
        ] {
            c.goto(&format!("{base}{path}")).await.expect("page");
            wait_for_text(&c, "h1", "", Duration::from_secs(5)).await;
            shot(&c, name).await;
        }
        c.close().await.expect("close");
    });
    assert_eq!(
        environment(&status(&server, "web"), "dev")["live"]["release"],
        "1"
    );
    assert_eq!(
        environment(&status(&server, "web"), "prod")["live"]["release"],
        "2"
    );
}

/// `curl` with a cookie jar: (status, body, headers).
fn curl(jar: &std::path::Path, args: &[&str]) -> (u16, String, String) {
    let headers = jar.with_extension("headers");
    let out = Command::new("curl")
        .args([
            "-s",
            "-b",
            jar.to_str().expect("utf8"),
            "-c",
            jar.to_str().expect("utf8"),
        ])
        .args([
            "-D",
            headers.to_str().expect("utf8"),
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("a status");
    let headers = std::fs::read_to_string(headers).unwrap_or_default();
    (code.parse().expect("status"), body.to_string(), headers)
}

fn add_user(server: &ServerProcess, name: &str, role: &str, email: &str) {
    succeeded(&server.add_user(name, role, email));
}

fn log_in(server: &ServerProcess, jar: &std::path::Path, name: &str) -> String {
    let (status, _, headers) = curl(
        jar,
        &[
            "-d",
            &format!("name={name}&password={PASSWORD}&next=/ui"),
            &format!("{}/ui/login", server.url),
        ],
    );
    assert_eq!(status, 303, "{headers}");
    let cookie = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie"))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // The CSRF token every form of this session carries.
    let (_, page, _) = curl(jar, &[&format!("{}/ui", server.url)]);
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..].split('"').next().expect("token").to_string()
}

#[test]
fn forms_need_the_session_token_and_the_role_and_the_page_says_who_cannot_decide() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = PIPELINE.replace("; sleep 2; echo \"live-line-42\"; sleep 3", "");
    let remote = Remote::new(tmp.path(), &pipeline);
    let server = ServerProcess::start(&tmp.path().join("data"), &[]);
    succeeded(&server.cli(&[
        "project",
        "add",
        "web",
        "--git",
        remote.bare.to_str().expect("utf8"),
    ]));
    // Dev wrote the commits (the test repository's author); Vic only looks.
    add_user(&server, "dev", "developer", "dev@example.com");
    add_user(&server, "vic", "viewer", "vic@example.com");
    succeeded(&server.cli(&["trigger", "web", "--branch", "main", "--wait"]));
    server.wait_until("dev runs release 1", Duration::from_secs(30), || {
        environment(&status(&server, "web"), "dev")["live"]["release"] == "1"
    });
    succeeded(&server.cli(&[
        "promote-release",
        "-p",
        "web",
        "--from",
        "dev",
        "--to",
        "prod",
    ]));

    let dev_jar = tmp.path().join("dev.cookies");
    let dev_csrf = log_in(&server, &dev_jar, "dev");
    let (status, page, _) = curl(
        &dev_jar,
        &[&format!("{}/ui/projects/web/environments/prod", server.url)],
    );
    assert_eq!(status, 200);
    assert!(
        page.contains("You cannot decide") && page.contains("four-eyes"),
        "{page}"
    );
    let rollback = format!("{}/ui/projects/web/environments/dev/rollback", server.url);
    let (status, body, _) = curl(&dev_jar, &["-d", "csrf=forged", &rollback]);
    assert_eq!((status, body.contains("CSRF")), (403, true), "{body}");
    assert!(!dev_csrf.is_empty());

    let vic_jar = tmp.path().join("vic.cookies");
    let vic_csrf = log_in(&server, &vic_jar, "vic");
    let (status, body, _) = curl(&vic_jar, &["-d", &format!("csrf={vic_csrf}"), &rollback]);
    assert_eq!(
        (status, body.contains("needs the developer role")),
        (403, true),
        "{body}"
    );
    // An environment name from the URL that the project does not have is not a page.
    let forged = format!(
        "{}/ui/projects/web/environments/x%27)%2Calert(1)%2C(%27",
        server.url
    );
    let (status, body, _) = curl(&vic_jar, &[&forged]);
    assert_eq!(status, 404, "{body}");
    assert!(
        !body.contains("<html"),
        "a plain-text refusal, no page: {body}"
    );
    // An unknown name is refused like a wrong password.
    let (status, body, _) = curl(
        &tmp.path().join("nobody.cookies"),
        &[
            "-d",
            "name=nobody&password=whatever&next=/ui",
            &format!("{}/ui/login", server.url),
        ],
    );
    assert_eq!(status, 401);
    assert!(body.contains("unknown user or wrong password"), "{body}");
    // Without a session, pages send people to the login page.
    let (status, _, headers) = curl(
        &tmp.path().join("nobody.cookies"),
        &[&format!("{}/ui/projects/web", server.url)],
    );
    assert_eq!(status, 303);
    assert!(
        headers.contains("/ui/login?next=/ui/projects/web"),
        "{headers}"
    );
}
