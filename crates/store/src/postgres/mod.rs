//! PostgreSQL store over sqlx. Every coordination between hub instances (idempotency,
//! counters, leases) is a constraint or a row lock here.

mod answered_groups;
mod outbox;
mod partners;
mod pins;
mod settlement;
mod transactions;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::migrations::{self, Migration};
use crate::{MetaStore, StoreError};

pub struct PgStore {
    pool: PgPool,
    answered: answered_groups::AnsweredWriter,
}

/// Any number; only every dcbhub instance must use the same one.
const MIGRATION_LOCK: i64 = 0x6463_6268_7562;

impl PgStore {
    pub async fn connect(url: &str, migrate: bool) -> Result<Self, StoreError> {
        // Connections open on demand. Two instances at 32 stay well inside PostgreSQL's
        // default 100, and more transactions in flight let one WAL flush commit more of them.
        let pool = PgPoolOptions::new()
            .max_connections(32)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        let answered = answered_groups::AnsweredWriter::start(pool.clone());
        let store = Self { pool, answered };
        if migrate {
            store.apply_migrations().await?;
        }
        Ok(store)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn apply_migrations(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two instances starting together: the second waits here, then finds nothing to do.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL
             )",
        )
        .execute(&mut *tx)
        .await?;
        for Migration { version, name, sql } in migrations::POSTGRES {
            let done: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
            )
            .bind(version)
            .fetch_one(&mut *tx)
            .await?;
            if done {
                continue;
            }
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::Backend(format!("migration {name}: {e}")))?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(version)
            .bind(name)
            .bind(dcbhub_domain::Timestamp::now().unix_millis())
            .execute(&mut *tx)
            .await?;
            tracing::info!(migration = name, "applied");
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl MetaStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let latest = migrations::latest(migrations::POSTGRES);
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        if applied < latest {
            return Err(StoreError::Config(format!(
                "migrations pending: database at {applied}, this build needs {latest}"
            )));
        }
        Ok(())
    }
}

/// True when `e` is a unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}
