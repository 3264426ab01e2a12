//! Upgrading a database the schema before people existed (migration 0009)
//! made, on SQLite and on PostgreSQL: every token with an email gets its
//! person even when a user already has the email's name, decisions made
//! with two tokens of one person count once, and the webhook secret ends up
//! the server's alone.

// The upgrade test uses only the harness's empty database, not the stories.
#[allow(dead_code, unused_macros)]
mod common;

use slipway_store::{JobScope, ProjectId, Store};
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

/// The last migration of the schema before tokens belonged to people.
const BEFORE_PEOPLE: i64 = 9;

/// What a 0009 database may hold: a user named like a token's email but
/// with another email (another person), two tokens of Alice under one
/// email in two letter cases, both of which approved one deployment (which
/// her laptop token asked for), and the project's webhook secret.
const OLD_ROWS: &[&str] = &[
    "INSERT INTO users (name, password_hash, role, email, groups_json, created_at) VALUES ('alice@example.com', 'x', 'developer', 'other@example.com', '[]', 1)",
    "INSERT INTO users (name, password_hash, role, email, groups_json, created_at) VALUES ('bob', 'x', 'developer', 'bob@example.com', '[]', 2)",
    "INSERT INTO tokens (hash, name, role, created_at, email, groups_json) VALUES ('h1', 'alice-laptop', 'developer', 100, 'Alice@Example.com', '[]')",
    "INSERT INTO tokens (hash, name, role, created_at, email, groups_json) VALUES ('h2', 'alice-ci', 'developer', 200, 'alice@example.com', '[]')",
    "INSERT INTO tokens (hash, name, role, created_at, email, groups_json) VALUES ('h3', 'agent-1', 'agent', 300, NULL, '[]')",
    "INSERT INTO projects (id, name, git_url, created_at) VALUES (1, 'web', '/srv/web.git', 1)",
    "INSERT INTO runs (id, project_id, number, commit_sha, branch, state, created_at) VALUES (1, 1, 1, 'c0ffee', 'main', 'succeeded', 1)",
    "INSERT INTO releases (id, project_id, version, run_id, commit_sha, branch, author, message, images, commits, created_at) VALUES (1, 1, '1', 1, 'c0ffee', 'main', 'A <a@example.com>', 'm', '[]', '[]', 1)",
    "INSERT INTO deployments (id, project_id, environment, release_id, action, state, requested_by, created_at) VALUES (1, 1, 'prod', 1, 'deploy', 'awaiting_approval', 'alice-laptop', 1)",
    "INSERT INTO decisions (deployment_id, who, decision, comment, at) VALUES (1, 'alice-laptop', 'approve', 'ok', 10)",
    "INSERT INTO decisions (deployment_id, who, decision, comment, at) VALUES (1, 'alice-ci', 'approve', 'ok again', 20)",
    "INSERT INTO decisions (deployment_id, who, decision, comment, at) VALUES (1, 'bob', 'approve', 'fine', 30)",
];

/// Migrates `url` to 0009, writes [`OLD_ROWS`] and a webhook secret, then
/// opens it as the current server does (which applies the rest).
async fn upgraded(url: &str) -> Store {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("connect");
    let migrator = if url.starts_with("sqlite:") {
        sqlx::migrate!("./migrations/sqlite")
    } else {
        sqlx::migrate!("./migrations/postgres")
    };
    migrator
        .run_to(BEFORE_PEOPLE, &pool)
        .await
        .expect("migrate to 0009");
    for row in OLD_ROWS {
        pool.execute(*row).await.expect(row);
    }
    for name in [".webhook", "API_KEY"] {
        sqlx::query(
            "INSERT INTO secrets (project_id, name, sealed, updated_at) VALUES (1, $1, $2, 1)",
        )
        .bind(name)
        .bind(vec![1u8, 2, 3])
        .execute(&pool)
        .await
        .expect("secret");
    }
    pool.close().await;
    Store::open(url).await.expect("the upgrade applies")
}

async fn people_survive_the_upgrade(store: Store) {
    let laptop = store
        .token_owner("h1")
        .await
        .expect("owner")
        .expect("a person");
    let ci = store
        .token_owner("h2")
        .await
        .expect("owner")
        .expect("a person");
    assert_eq!(laptop, ci, "one email, one person");
    assert_eq!(laptop.email.as_deref(), Some("alice@example.com"));
    assert_ne!(
        laptop.name, "alice@example.com",
        "the name was another person's"
    );
    let other = store
        .user("alice@example.com")
        .await
        .expect("user")
        .expect("still there");
    assert_eq!(other.email.as_deref(), Some("other@example.com"));
    assert_eq!(store.token_owner("h3").await.expect("owner"), None);

    // Alice's two tokens approved once between them; Bob's approval stays.
    let decisions = store.decisions(1).await.expect("decisions");
    let who: Vec<&str> = decisions.iter().map(|d| d.who.as_str()).collect();
    assert_eq!(who.len(), 2, "{who:?}");
    assert!(
        who.contains(&laptop.name.as_str()) && who.contains(&"bob"),
        "{who:?}"
    );
    let asked = store.deployment(1).await.expect("deployment");
    assert_eq!(asked.requested_by, laptop.name, "who asked is the person");

    let secrets = store.secrets(ProjectId(1)).await.expect("secrets");
    let scope = |name: &str| {
        secrets
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.scope.clone())
            .expect("the secret")
    };
    assert_eq!(scope(".webhook").jobs, JobScope::None);
    assert_eq!(scope(".webhook").environments, Some(Vec::new()));
    assert_eq!(
        scope("API_KEY").jobs,
        JobScope::Any,
        "old secrets keep their reach"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_people_survive_the_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    people_survive_the_upgrade(upgraded(&url).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_people_survive_the_upgrade() {
    let (url, _guard) = common::harness::empty_postgres("slipway_upgrade").await;
    let store = upgraded(&url).await;
    people_survive_the_upgrade(store.clone()).await;
    store.close().await;
}
