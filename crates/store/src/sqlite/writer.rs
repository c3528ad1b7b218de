//! The single SQLite writer. Every write of the process runs on one dedicated thread that
//! owns the only writing connection. It takes whatever writes are waiting, runs each inside
//! its own savepoint of one transaction, commits once (one fsync for the whole group) and
//! only then answers each caller. A failed write rolls back its savepoint alone.
//!
//! Hand-written because no crate offers group commit over rusqlite; see
//! `shared/reference/ceilings.md` for why this design (≈ 48k durable req/s against ≈ 7k for a
//! pooled insert-per-request design on the same machine).

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::StoreError;

/// Called after the group's commit with the commit's result.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs inside a savepoint; says whether it succeeded and how to answer its caller.
type Job = Box<dyn FnOnce(&Connection) -> (bool, Completion) + Send>;

/// Most writes one commit takes; bounds the latency of the first write of a large group.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next group and answers once the group is durable.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
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

fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
    let mut completions: Vec<Completion> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = queue.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let outcome = commit_group(&conn, &mut group, &mut completions);
        // Jobs a failure left unrun are dropped here; their callers get an error.
        group.clear();
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = completions.len(), "sqlite group commit failed");
        }
        for completion in completions.drain(..) {
            completion(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            });
        }
    }
}

fn commit_group(
    conn: &Connection,
    group: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<(), rusqlite::Error> {
    // Cached like every statement here: `execute_batch` would parse them at every group.
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = run_jobs(conn, group, completions)
        .and_then(|()| conn.prepare_cached("COMMIT")?.execute([]).map(|_| ()));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn run_jobs(
    conn: &Connection,
    group: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<(), rusqlite::Error> {
    for job in group.drain(..) {
        conn.prepare_cached("SAVEPOINT w")?.execute([])?;
        // A panicking job is a bug, but it must not take the only writer down with it.
        let ran = panic::catch_unwind(AssertUnwindSafe(|| job(conn)));
        let ok = matches!(ran, Ok((true, _)));
        if !ok {
            conn.prepare_cached("ROLLBACK TO w")?.execute([])?;
        }
        conn.prepare_cached("RELEASE w")?.execute([])?;
        if let Ok((_, completion)) = ran {
            completions.push(completion);
        }
    }
    Ok(())
}
