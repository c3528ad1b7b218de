//! Fresh, isolated databases for tests: a temporary SQLite file, or a new PostgreSQL
//! database per test on the server named by `DCBHUB_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(clippy::panic)] // test support: a broken test set-up should stop the test loudly

use sqlx::Connection;

use crate::StoreError;

pub const POSTGRES_ENV: &str = "DCBHUB_TEST_POSTGRES_URL";
/// When set (CI sets it), a missing PostgreSQL fails the tests instead of skipping them.
pub const REQUIRE_ENV: &str = "DCBHUB_REQUIRE_POSTGRES";

fn server_url() -> String {
    std::env::var(POSTGRES_ENV)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A temporary directory and a `sqlite://` URL inside it; the directory lives as long as the
/// returned guard.
pub fn sqlite_url() -> Result<(tempfile::TempDir, String), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Config(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("dcbhub.db").display());
    Ok((dir, url))
}

/// Creates a new empty database and returns its URL, or `None` (after printing a plain
/// SKIPPED line) when no PostgreSQL answers and [`REQUIRE_ENV`] is unset.
pub async fn postgres_url(test: &str) -> Option<String> {
    let server = server_url();
    let mut admin = match sqlx::PgConnection::connect(&server).await {
        Ok(c) => c,
        Err(e) => {
            if std::env::var_os(REQUIRE_ENV).is_some() {
                panic!(
                    "PostgreSQL required ({REQUIRE_ENV} is set) but not reachable at {server}: {e}"
                );
            }
            eprintln!("SKIPPED {test} on PostgreSQL: not reachable at {server} ({e})");
            return None;
        }
    };
    let name = format!("dcbhub_test_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
    {
        panic!("cannot create test database {name}: {e}");
    }
    let (base, _) = server.rsplit_once('/').unwrap_or((&server, ""));
    Some(format!("{base}/{name}"))
}
