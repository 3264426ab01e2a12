//! Persistence: one [`Store`] API over SQLite (the embedded default) and
//! PostgreSQL (several servers sharing one database).
//!
//! Queries are written once in the SQL both backends accept (`$1` parameters,
//! `RETURNING`), through sqlx's `Any` driver; where they must differ (job claiming
//! uses `FOR UPDATE SKIP LOCKED` on PostgreSQL) the [`Backend`] decides. Each
//! backend has its own migrations. This crate knows the domain's records and
//! state machines; it knows nothing of HTTP, git or how jobs run.

mod deploy;
mod gates;
mod jobs;
mod logs;
mod metrics;
mod model;
mod projects;
mod registry;
mod runs;
mod secrets;
mod steps;
mod triggers;
mod users;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use deploy::{
    AuditEntry, Decision, DeployState, Deployment, EnvironmentRecord, NewDeployment, NewRelease,
    Release, ReleaseCommit, ReleaseImage,
};
pub use gates::GateRecord;
pub use jobs::{Claim, JobRef, MAX_ATTEMPTS};
pub use logs::LogPage;
pub use metrics::{Counts, DeploymentFact, JobGroup};
pub use model::{Job, JobId, JobMatrix, Project, ProjectId, Run, RunId, State, Transition};
pub use registry::{
    ManifestRecord, NewManifest, NewPromotion, Promotion, RawFile, RepoKind, Repository,
    RetiredTag, RunImage, TagPage, TagPolicy,
};
pub use runs::{NewJob, NewRun, Pusher, RunCause};
pub use secrets::{JobScope, SecretEntry, SecretScope};
pub use steps::StepTime;
pub use users::{NO_PASSWORD, Session, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )]
    BadUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database failed because its disk (or quota) is full:
    /// SQLite's `SQLITE_FULL`, PostgreSQL's `disk_full` class (53100), or an
    /// I/O error saying so. The caller answers 507, not 500: the fix is space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("13" | "53100"))
                    || db.message().contains("disk is full")
            }
            StoreError::Database(sqlx::Error::Io(e)) => io_is_storage_full(e),
            _ => false,
        }
    }
}

/// Whether an I/O error means the file system (or the user's quota) is full.
pub fn io_is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database, shared by every part of the server.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and applies migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let url = match backend {
            // Create the file on first start.
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait for the writer; a busy writer is waited for, not failed.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").await?;
                    }
                    Ok(())
                })
            })
            .after_release(|conn, _| Box::pin(drop_if_in_transaction(conn)))
            .connect_with(options)
            .await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a transaction that reads first and upgrades
    /// later fails with "database is locked" instead of waiting its turn.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Keeps a released connection only if no transaction is left open on it.
///
/// A transaction dropped without COMMIT queues its ROLLBACK; the ping flushes
/// it. A COMMIT that failed (the disk full, SQLite rolled back on its own)
/// leaves the driver counting a transaction that ROLLBACK cannot end, and
/// every later `BEGIN` on that connection fails ("non-zero transaction
/// depth"): such a connection is closed, and the pool opens a fresh one.
async fn drop_if_in_transaction(conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    if conn.is_in_transaction() {
        conn.ping().await?;
    }
    Ok(!conn.is_in_transaction())
}

/// Milliseconds since the Unix epoch: how every time is stored.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn state_of(text: &str) -> Result<State> {
    State::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown state `{text}`")))
}

fn strings_of(json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("bad list `{json}`: {e}")))
}

fn json_of(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// Records one state change in the same transaction as the change itself.
async fn record_transition(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entity: &str,
    id: i64,
    from: Option<State>,
    to: State,
    reason: Option<&str>,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO transitions (entity, entity_id, from_state, to_state, reason, at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(entity)
        .bind(id)
        .bind(from.map(State::as_str))
        .bind(to.as_str())
        .bind(reason)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Every state change of a run (`entity` "run") or a job ("job"), oldest first.
    pub async fn transitions(&self, entity: &str, id: i64) -> Result<Vec<Transition>> {
        use sqlx::Row;
        let rows = sqlx::query("SELECT from_state, to_state, reason, at FROM transitions WHERE entity = $1 AND entity_id = $2 ORDER BY id")
            .bind(entity)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_state")?;
                Ok(Transition {
                    from: from.as_deref().map(state_of).transpose()?,
                    to: state_of(&r.try_get::<String, _>("to_state")?)?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}

/// A query assembled from this crate's own constant pieces (column lists, a
/// lock clause), never from input: values are always bound parameters.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}
