//! SQLite store: writes through the single [`writer::Writer`] (group commit), reads on a
//! small pool of read-only connections.

mod outbox;
mod partners;
mod pins;
mod readers;
mod settlement;
mod transactions;
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
        let writer = Writer::start(conn)?;
        start_checkpointer(path.clone());
        Ok(Self {
            writer,
            readers: Readers::new(path),
        })
    }
}

fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // FULL: a commit is on disk before anyone is answered. Checkpoints run on their own
    // thread (see `start_checkpointer`) to keep them off the commit path.
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
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

/// Moves WAL pages into the database file every half second, away from the writer thread.
fn start_checkpointer(path: PathBuf) {
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let conn = match Connection::open(&path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "checkpointer cannot open the database");
                    return;
                }
            };
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
            loop {
                std::thread::sleep(Duration::from_millis(500));
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                    tracing::warn!(error = %e, "wal checkpoint failed");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the checkpointer thread");
    }
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
