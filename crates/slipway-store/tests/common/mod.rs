//! What every story file shares: fresh databases of both kinds, and the
//! macro that runs each story on both.

pub mod harness {
    use slipway_store::Store;
    use sqlx::{Connection, Executor};

    /// A fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> (Store, Box<dyn std::any::Any>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("slipway.db").display());
        (Store::open(&url).await.expect("open sqlite"), Box::new(dir))
    }

    /// A fresh PostgreSQL database, dropped when the guard goes.
    pub async fn postgres() -> (Store, Box<dyn std::any::Any>) {
        let (url, guard) = empty_postgres("slipway_test").await;
        let store = Store::open(&url).await.expect("open postgres");
        (store, guard)
    }

    /// The URL of a new, empty PostgreSQL database named after `prefix`, and
    /// the guard that drops it: for tests that build the schema themselves.
    #[allow(dead_code)] // each test binary uses only some of the harness
    pub async fn empty_postgres(prefix: &str) -> (String, Box<dyn std::any::Any>) {
        let admin = std::env::var("SLIPWAY_TEST_DATABASE_URL").expect(
            "SLIPWAY_TEST_DATABASE_URL is not set: run scripts/test, which starts PostgreSQL and sets it",
        );
        let name = format!("{prefix}_{}_{}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("bad SLIPWAY_TEST_DATABASE_URL"),
        };
        (url, Box::new(DropDb { admin, name }))
    }

    fn rand_suffix() -> u32 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    }

    struct DropDb {
        admin: String,
        name: String,
    }

    impl Drop for DropDb {
        fn drop(&mut self) {
            let (admin, name) = (self.admin.clone(), self.name.clone());
            // Drop runs outside the test's runtime: use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = conn
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs a story on both backends.
macro_rules! stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let (store, _guard) = crate::common::harness::sqlite().await;
                super::$story(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $story() {
                let (store, _guard) = crate::common::harness::postgres().await;
                super::$story(store.clone()).await;
                store.close().await;
            })*
        }
    };
}
