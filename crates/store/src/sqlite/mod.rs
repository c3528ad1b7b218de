//! SQLite store: writes through the single [`writer::Writer`] (group commit), reads on a
//! small pool of read-only connections.

mod checkpoint;
mod outbox;
mod partners;
mod pins;
mod prepared;
mod readers;
mod settlement;
mod transactions;
mod wal_batch;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use crate::migrations::{self, Migration};
use crate::{MetaStore, StoreError};
use readers::Readers;
use writer::Writer;

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Every statement the store runs stays prepared (rusqlite keeps 16 by default; the store has
/// more distinct statements than that, and re-preparing them would cost on every request).
const STATEMENT_CACHE: usize = 256;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. With `migrate`, pending migrations
    /// are applied first; without, the store still opens and `ready` reports what is missing.
    pub async fn open(path: &Path, migrate: bool) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Config(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let conn = open_writer(&path)?;
        if migrate {
            apply_migrations(&conn)?;
        }
        let top_up = checkpoint::TopUp::default();
        let writer = Writer::start(conn, wal_path(&path), top_up.clone())?;
        checkpoint::start(path.clone(), top_up);
        Ok(Self {
            writer,
            readers: Readers::new(path),
        })
    }
}

/// SQLite names a database's WAL after it: `<database>-wal`.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    wal_batch::register()?;
    let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), wal_batch::NAME)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // NORMAL: the commit does not wait for the disk; the writer's syncer thread fsyncs the
    // WAL before anyone is answered (see `writer`). Checkpoints run on their own thread (see
    // `checkpoint`) to keep them off the commit path. The page size applies to a new database
    // only: a charge dirties about three pages no other charge of its group shares (its
    // idempotency key, its customer's index entry, its day total), each a WAL frame; 2 KiB
    // pages measured best under load against 1 and 4 KiB (docs/PERFORMANCE.md).
    conn.execute_batch(
        "PRAGMA page_size = 2048;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Pages already checkpointed into the database file are read through the mapping instead
    // of a pread per page: a reader's page cache is dropped at every commit of the writer.
    conn.execute_batch("PRAGMA mmap_size = 1073741824;")?;
    Ok(conn)
}

fn apply_migrations(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL
         ) STRICT;",
    )?;
    for Migration { version, name, sql } in migrations::SQLITE {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let done: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
            [version],
            |r| r.get(0),
        )?;
        let applied = if done {
            Ok(())
        } else {
            conn.execute_batch(sql).and_then(|()| {
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                    rusqlite::params![version, name, dcbhub_domain::Timestamp::now().unix_millis()],
                )
                .map(|_| ())
            })
        };
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Backend(format!("migration {name}: {e}")));
            }
        }
        if !done {
            tracing::info!(migration = name, "applied");
        }
    }
    Ok(())
}

#[async_trait]
impl MetaStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let latest = migrations::latest(migrations::SQLITE);
        let applied: i64 = self.readers.read(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(StoreError::from)
        })?;
        if applied < latest {
            return Err(StoreError::Config(format!(
                "migrations pending: database at {applied}, this build needs {latest}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DAY: i64 = 86_400_000;

    fn charge(conn: &Connection, id: &str, account: &str, amount: i64, status: &str, at: i64) {
        conn.execute(
            "INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status, customer,
                 customer_kind, csp_id, account_key, amount_minor, currency, description, tax_included,
                 processing_until, next_check_at, created_at, updated_at)
             VALUES (?1, 1, ?1, 'f', 'CHARGE', ?2, '+447700900100', 'msisdn', 'sandbox', ?3, ?4, 'GBP',
                 'd', 1, ?5, ?5, ?5, ?5)",
            rusqlite::params![id, status, account, amount, at],
        )
        .unwrap();
    }

    #[tokio::test]
    async fn a_store_opened_without_migrations_opens_and_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("empty.db"), false)
            .await
            .unwrap();
        assert!(
            store.ready().await.is_err(),
            "an empty database is not ready"
        );
    }

    #[test]
    fn the_spending_migration_counts_the_last_month_of_charges_by_utc_day() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for m in &migrations::SQLITE[..5] {
            conn.execute_batch(m.sql).unwrap();
        }
        let now = dcbhub_domain::Timestamp::now().unix_millis();
        let today = now - now % DAY;
        charge(&conn, "tx_a", "sandbox:1", 100, "SUCCESS", today + 1);
        charge(&conn, "tx_b", "sandbox:1", 200, "PENDING", today + 2);
        charge(&conn, "tx_c", "sandbox:1", 400, "FAILED", today + 3);
        charge(&conn, "tx_d", "sandbox:1", 800, "SUCCESS", today - DAY + 5);
        charge(
            &conn,
            "tx_e",
            "sandbox:1",
            1600,
            "SUCCESS",
            today - 40 * DAY,
        );
        charge(&conn, "tx_f", "sandbox:2", 3200, "SUCCESS", today + 4);
        conn.execute_batch(migrations::SQLITE[5].sql).unwrap();
        let days: Vec<(String, i64, i64)> = conn
            .prepare("SELECT account_key, day_start, total FROM spending_days ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = vec![
            ("sandbox:1".to_owned(), today - DAY, 800),
            ("sandbox:1".to_owned(), today, 300),
            ("sandbox:2".to_owned(), today, 3200),
        ];
        assert_eq!(
            days, expected,
            "the failed and the 40-day-old charge do not count"
        );
        let failed: Option<i64> = conn
            .query_row(
                "SELECT spend_day FROM transactions WHERE id = 'tx_c'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(failed, None, "a failed charge never counts");
    }
}
