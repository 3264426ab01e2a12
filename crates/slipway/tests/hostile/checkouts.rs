//! A job's checkout is its own repository: a step cannot reach the server's
//! mirror through it (no alternates, no hard links), cannot read another
//! project's mirror (neither directly nor as a submodule the server would
//! fetch for it), and finds no credentials in `.git/config`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::support::{agent_post, agent_token, assert_all_refused, log_of, probes, wait_for_end};
use crate::common::server::{GitHttpAuth, Remote, ServerProcess, commit_file, git};
use crate::common::service::succeeded;

/// `$D` is the server's data directory (the workspaces' grandparent); the
/// project under attack is project 2, the victim project 1.
const ATTACK: &str = r#"
D=$(dirname "$(dirname "$SLIPWAY_WORKSPACE")")
probe() { n=$1; shift; if sh -c "$@" >/dev/null 2>&1; then echo "PROBE $n LEAKED"; else echo "PROBE $n refused"; fi; }
probe no-checkout 'test ! -d .git'
probe alternates 'test -e .git/objects/info/alternates'
probe hard-links 'test -n "$(find .git -type f -links +1)"'
probe write-own-mirror 'touch "$0"/repos/2.git/objects/pwned' "$D"
probe read-other-mirror 'cat "$0"/repos/1.git/HEAD' "$D"
probe fetch-other-mirror 'git fetch -q "$0"/repos/1.git' "$D"
probe data-dir-in-config 'grep -qF "$0" .git/config' "$D"
# What the job may do to its own objects changes nothing of the mirror's.
chmod -R u+w .git/objects
find .git/objects -type f | while read -r f; do echo junk >> "$f"; done
echo "PROBE done"
"#;

#[test]
fn a_job_cannot_change_its_mirror_nor_read_another_projects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = ServerProcess::start(&data, &["--workers", "1"]);
    // Project 1: the victim, with a source nobody else may read.
    let victim = add_victim(&server, tmp.path());
    succeeded(&server.cli(&["trigger", "victim", "--wait"]));
    let victim_mirror = data.join("repos/1.git");
    assert!(
        victim_mirror.join("HEAD").exists(),
        "the victim's mirror is there to steal from"
    );

    // Project 2 ("demo"): the attack, and a submodule naming the victim's mirror.
    let remote = attacker(&tmp.path().join("attacker"), &victim, &victim_mirror);
    server.add_project(&remote, &[]);
    assert!(server.cli(&["trigger", "demo"]).status.success());
    wait_for_end(&server, "demo/1", Duration::from_secs(60));
    let log = log_of(&server, "demo/1");
    assert_all_refused(&probes(&log));
    assert!(!log.contains("the victim's source"), "{log}");

    let status = server.run_status("demo/1");
    let jobs = status["jobs"].as_array().expect("jobs");
    let job = |name: &str| jobs.iter().find(|j| j["name"] == name).expect("job");
    assert_eq!(job("attack")["state"], "succeeded", "{status}");
    assert_eq!(job("loot")["state"], "failed", "{status}");
    let reason = job("loot")["reason"].to_string();
    assert!(
        reason.contains("cannot check out the submodules"),
        "{reason}"
    );

    // The mirror is whole: a fresh run checks out from it again.
    let fsck = Command::new("git")
        .args(["fsck", "--full", "--no-progress"])
        .current_dir(data.join("repos/2.git"))
        .output()
        .expect("git");
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stderr)
    );
    assert!(!data.join("repos/2.git/objects/pwned").exists());
    assert!(server.cli(&["trigger", "demo"]).status.success());
    wait_for_end(&server, "demo/2", Duration::from_secs(60));
    let second = server.run_status("demo/2");
    let jobs = second["jobs"].as_array().expect("jobs");
    let attack = jobs.iter().find(|j| j["name"] == "attack").expect("attack");
    assert_eq!(attack["state"], "succeeded", "{second}");
}

/// Project `victim` on `server`, its one commit holding a source nobody
/// else may read (`secret.txt`).
fn add_victim(server: &ServerProcess, dir: &Path) -> Remote {
    let victim = Remote::new(&dir.join("victim"), "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(
        &victim.work,
        "secret.txt",
        "the victim's source\n",
        "secret",
    );
    victim.push();
    let victim_url = victim.bare.to_str().expect("utf8");
    succeeded(&server.cli(&["project", "add", "victim", "--git", victim_url]));
    victim
}

/// The attacker's repository: job `attack` runs [`ATTACK`]; job `loot` checks
/// out a submodule whose URL is the victim's mirror on the server.
fn attacker(dir: &Path, victim: &Remote, victim_mirror: &Path) -> Remote {
    let remote = Remote::new(dir, "jobs:\n  noop:\n    steps: [true]\n");
    commit_file(&remote.work, "attack.sh", ATTACK, "attack");
    let pipeline = "jobs:\n  attack:\n    steps:\n      - run: sh attack.sh\n  \
                    loot:\n    checkout: { submodules: true }\n    steps:\n      - run: cat loot/secret.txt\n";
    remote.commit(".slipway.yml", pipeline, "pipeline");
    let gitmodules = format!(
        "[submodule \"loot\"]\n\tpath = loot\n\turl = {}\n",
        victim_mirror.display()
    );
    std::fs::write(remote.work.join(".gitmodules"), gitmodules).expect("write");
    let gitlink = format!("160000,{},loot", victim.head());
    git(
        &remote.work,
        &["update-index", "--add", "--cacheinfo", &gitlink],
    );
    // Not `add -A`: it would drop the gitlink, whose directory is not there.
    git(&remote.work, &["add", ".gitmodules"]);
    let author = ["-c", "user.name=Dev", "-c", "user.email=dev@example.com"];
    git(
        &remote.work,
        &[&author[..], &["commit", "-qm", "loot"]].concat(),
    );
    remote.push();
    remote
}

#[test]
fn the_checkouts_config_names_the_remote_without_its_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = "jobs:\n  look:\n    steps:\n      - run: |\n          \
                    echo \"origin $(git config remote.origin.url)\"\n          \
                    if grep -rq s3cret-token .git; then echo 'PROBE token LEAKED'; else echo 'PROBE token refused'; fi\n          \
                    echo 'PROBE done'\n";
    Remote::new(tmp.path(), pipeline);
    let http = GitHttpAuth::start(tmp.path(), "ci-bot", "s3cret-token");
    // The user gave the token in the URL, as many do.
    let port = http.port;
    let url = format!("http://ci-bot:s3cret-token@127.0.0.1:{port}/remote.git");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "1"]);
    let out = server.cli(&["project", "add", "demo", "--git", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&["trigger", "demo", "--wait"]);
    let log = log_of(&server, "demo/1");
    assert!(out.status.success(), "{log}");
    assert_all_refused(&probes(&log));
    assert!(
        log.contains(&format!("origin http://127.0.0.1:{port}/remote.git")),
        "{log}"
    );
}

#[test]
fn an_agent_token_gets_bundles_only_of_the_run_whose_job_it_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&tmp.path().join("data"), &["--workers", "0"]);
    let remote = Remote::new(
        &tmp.path().join("demo"),
        "jobs:\n  noop:\n    steps: [true]\n",
    );
    server.add_project(&remote, &[]);
    let agent = agent_token(&server, "fake-agent");
    succeeded(&server.cli(&["trigger", "demo"]));
    let (code, claimed) = agent_post(
        &server,
        &agent,
        "claim",
        r#"{"worker":"fake","labels":[],"wait_ms":10000}"#,
    );
    assert_eq!(code, 200, "claim: {claimed}");
    let claimed: serde_json::Value = serde_json::from_str(&claimed).expect("JSON");
    let own_run = claimed["run_id"].as_i64().expect("run id");

    add_victim(&server, tmp.path());
    succeeded(&server.cli(&["trigger", "victim"]));
    let victim_run = server.run_status("victim/1")["run"]["id"]
        .as_i64()
        .expect("run id");
    assert_ne!(victim_run, own_run);

    let ask =
        |run: i64, body: &str| agent_post(&server, &agent, &format!("runs/{run}/bundle"), body);
    let (code, bundle) = ask(own_run, r#"{"have":[]}"#);
    assert_eq!(code, 200, "{bundle}");
    assert!(bundle.starts_with("# v2 git bundle"), "{bundle}");
    let (code, body) = ask(victim_run, r#"{"have":[]}"#);
    assert!(code == 403 || code == 404, "{code}: {body}");
    assert!(!body.contains("git bundle"), "{body}");
    // A have that is not a commit id is refused, not handed to git.
    let (code, body) = ask(own_run, r#"{"have":["--all"]}"#);
    assert_eq!(code, 400, "{body}");
}
