//! Checkpoints: WAL pages move into the database file on a thread of their own, away from the
//! writer. The WAL is only reused from its start (instead of growing) once a checkpoint has
//! copied every frame in it, which a checkpoint running beside a busy writer never catches
//! up with. So this thread copies until it is nearly level with the writer and then asks the
//! writer to copy the last few frames itself between two groups; the writer's next commit
//! then starts the WAL over.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::BUSY_TIMEOUT;

const INTERVAL: Duration = Duration::from_millis(250);
/// A WAL smaller than this many frames is left to grow (64 MiB with the 2 KiB pages of a new
/// database).
const RESTART_FRAMES: i64 = 32_768;
/// A pass this short leaves the writer only a few frames to copy.
const LEVEL: Duration = Duration::from_millis(5);
const MAX_PASSES: usize = 8;

/// Set by the checkpointer when the writer should top the checkpoint up (see the module).
#[derive(Clone, Default)]
pub struct TopUp(Arc<AtomicBool>);

impl TopUp {
    /// Runs the writer's part, if asked for: a checkpoint of the frames the background passes
    /// left, on the writer's own connection between two groups.
    pub fn run_if_wanted(&self, conn: &Connection) {
        if !self.0.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Err(e) = passive(conn) {
            tracing::warn!(error = %e, "wal checkpoint by the writer failed");
        }
    }
}

/// `(frames in the WAL, frames checkpointed)`.
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

pub fn start(path: PathBuf, top_up: TopUp) {
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
                std::thread::sleep(INTERVAL);
                run_passes(&conn, &top_up);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the checkpointer thread");
    }
}

/// Copies what the WAL holds; once the WAL is large, keeps copying until a pass is short,
/// then hands the rest to the writer.
fn run_passes(conn: &Connection, top_up: &TopUp) {
    for _ in 0..MAX_PASSES {
        let started = Instant::now();
        match passive(conn) {
            Ok((frames, _)) if frames < RESTART_FRAMES => return,
            Ok(_) if started.elapsed() <= LEVEL => {
                top_up.0.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "wal checkpoint failed");
                return;
            }
        }
    }
}
