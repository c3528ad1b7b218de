//! The single SQLite writer. Every write of the process runs on one dedicated thread that
//! owns the only writing connection. It takes whatever writes are waiting, runs each inside
//! its own savepoint of one transaction and commits once. A failed write rolls back its
//! savepoint alone.
//!
//! The commit does not wait for the disk (`synchronous = NORMAL`): a second thread, the
//! syncer, `fdatasync`s the WAL and only then answers the group's callers, while the writer
//! already runs the next group. Nobody is told of a write before it is durable; a write is
//! visible to readers up to one fsync earlier (so a power loss in that window can undo a
//! write that no caller was told had succeeded; a process crash loses nothing, the WAL is in
//! the page cache).
//!
//! Hand-written because no crate offers group commit over rusqlite; see
//! `shared/reference/ceilings.md` for why this design (≈ 48k durable req/s against ≈ 7k for a
//! pooled insert-per-request design on the same machine).

use std::cell::RefMut;
use std::fs::File;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, Statement};
use tokio::sync::oneshot;

use super::checkpoint::TopUp;
use super::prepared::{Hot, Prepared};
use crate::StoreError;

/// Called after the group's commit with the commit's result.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs inside a savepoint; says whether it succeeded and how to answer its caller.
type Job = Box<dyn FnOnce(&WriteConn<'_>) -> (bool, Completion) + Send>;

/// What a write runs on: the writer's connection and its hot statements, kept prepared.
pub struct WriteConn<'c> {
    conn: &'c Connection,
    prepared: Prepared<'c>,
}

impl<'c> WriteConn<'c> {
    /// Like `prepare_cached`, for the statements of the writer's hot path.
    pub(super) fn prepared(&self, hot: Hot) -> Result<RefMut<'_, Statement<'c>>, StoreError> {
        self.prepared.get(hot)
    }

    fn run(&self, hot: Hot) -> Result<(), StoreError> {
        self.prepared(hot)?.execute([])?;
        Ok(())
    }
}

impl Deref for WriteConn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Most writes one commit takes; bounds the latency of the first write of a large group.
const MAX_GROUP: usize = 512;

/// A committed group on its way to the disk, with whom to answer once it is there.
struct Committed {
    /// The commit's own result (an error needs no fsync).
    outcome: Result<(), String>,
    completions: Vec<Completion>,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer over `conn` (opened with `synchronous = NORMAL`) and the syncer of
    /// its WAL file `wal`.
    pub fn start(conn: Connection, wal: PathBuf, top_up: TopUp) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (committed, to_sync) = mpsc::channel::<Committed>();
        let spawn_error = |e: std::io::Error| {
            StoreError::Backend(format!("cannot start the writer threads: {e}"))
        };
        thread::Builder::new()
            .name("sqlite-syncer".into())
            .spawn(move || sync_loop(&wal, &to_sync))
            .map_err(spawn_error)?;
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, committed, top_up))
            .map_err(spawn_error)?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next group and answers once the group is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteConn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            let ok = result.is_ok();
            let completion: Completion = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, completion)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("the writer thread dropped a write".into()))?
    }
}

fn run(
    conn: Connection,
    queue: mpsc::Receiver<Job>,
    committed: mpsc::Sender<Committed>,
    top_up: TopUp,
) {
    let conn = WriteConn {
        conn: &conn,
        prepared: Prepared::new(&conn),
    };
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = queue.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut completions = Vec::with_capacity(group.len());
        let outcome = commit_group(&conn, &mut group, &mut completions);
        // Jobs a failure left unrun are dropped here; their callers get an error.
        group.clear();
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = completions.len(), "sqlite group commit failed");
        }
        let done = Committed {
            outcome: outcome.map_err(|e| e.to_string()),
            completions,
        };
        if let Err(mpsc::SendError(lost)) = committed.send(done) {
            answer(lost, Err("the syncer thread has stopped".into()));
        }
        top_up.run_if_wanted(&conn);
    }
}

/// Makes committed groups durable, all that are waiting with one `fdatasync` of the WAL,
/// then answers their callers.
fn sync_loop(wal: &Path, committed: &mpsc::Receiver<Committed>) {
    let mut file: Option<File> = None;
    let mut batch = Vec::new();
    while let Ok(first) = committed.recv() {
        batch.push(first);
        batch.extend(committed.try_iter());
        let synced = if batch.iter().any(|c| c.outcome.is_ok()) {
            sync(wal, &mut file)
        } else {
            Ok(())
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, wal = %wal.display(), "cannot sync the sqlite WAL");
        }
        for group in batch.drain(..) {
            let result = match (&group.outcome, &synced) {
                (Err(e), _) | (Ok(()), Err(e)) => Err(e.clone()),
                (Ok(()), Ok(())) => Ok(()),
            };
            answer(group, result);
        }
    }
}

/// `fdatasync` on any descriptor of the WAL flushes what the writer's own descriptor wrote.
fn sync(wal: &Path, file: &mut Option<File>) -> Result<(), String> {
    let opened = match file.take() {
        Some(f) => f,
        None => File::open(wal).map_err(|e| format!("cannot open the WAL: {e}"))?,
    };
    let result = opened
        .sync_data()
        .map_err(|e| format!("fdatasync of the WAL failed: {e}"));
    *file = Some(opened);
    result
}

fn answer(group: Committed, result: Result<(), String>) {
    for completion in group.completions {
        completion(result.clone().map_err(StoreError::Backend));
    }
}

fn commit_group(
    conn: &WriteConn<'_>,
    group: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    // Kept prepared like every statement here: `execute_batch` would parse them at every group.
    conn.run(Hot::Begin)?;
    let result = run_jobs(conn, group, completions).and_then(|()| conn.run(Hot::Commit));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn run_jobs(
    conn: &WriteConn<'_>,
    group: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    for job in group.drain(..) {
        conn.run(Hot::Savepoint)?;
        // A panicking job is a bug, but it must not take the only writer down with it.
        let ran = panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
        let ok = matches!(ran, Ok((true, _)));
        if !ok {
            conn.run(Hot::RollbackTo)?;
        }
        conn.run(Hot::Release)?;
        if let Ok((_, completion)) = ran {
            completions.push(completion);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn writer(dir: &Path) -> Writer {
        let path = dir.join("w.db");
        let conn = super::super::open_writer(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER NOT NULL);")
            .unwrap();
        Writer::start(conn, super::super::wal_path(&path), TopUp::default()).unwrap()
    }

    fn insert(conn: &Connection, v: i64) -> Result<(), StoreError> {
        conn.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_write_leaves_nothing_and_its_group_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        for round in 0..20_i64 {
            let base = round * 10;
            let (kept, failed, panicked, last) = tokio::join!(
                w.write(move |c| insert(c, base + 1)),
                w.write(move |c| {
                    insert(c, base + 2)?;
                    Err::<(), _>(StoreError::NotFound)
                }),
                w.write(move |c| -> Result<(), StoreError> {
                    insert(c, base + 3).unwrap();
                    panic!("a job's bug");
                }),
                w.write(move |c| insert(c, base + 4)),
            );
            assert!(kept.is_ok() && last.is_ok(), "round {round}");
            assert!(matches!(failed, Err(StoreError::NotFound)), "round {round}");
            assert!(panicked.is_err(), "round {round}");
        }
        let rows: Vec<i64> = w
            .write(|c| {
                let mut stmt = c.prepare("SELECT v % 10 FROM t ORDER BY rowid")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(rows, [1, 4].repeat(20));
    }
}
