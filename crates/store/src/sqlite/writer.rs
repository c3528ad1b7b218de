//! The single SQLite writer. Every write of the process runs on one dedicated thread that
//! owns the only writing connection. It takes whatever writes are waiting, runs them in one
//! transaction and commits once.
//!
//! A write that fails must leave nothing, and the others of its group must still commit.
//! Savepoints around each write would give that, at a price paid by every write (SQLite
//! copies each page a write touches into the savepoint's journal first). Writes fail rarely
//! (a refusal is a successful write that answers "no"), so a group runs without them: when a
//! write fails, the whole transaction is rolled back and the group runs again with a
//! savepoint around each write. Writes are therefore closures that may run twice
//! ([`Writer::write`]); the few that cannot ([`Writer::write_once`], e.g. one that asks an
//! in-process CSP) make their group use savepoints from the start.
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

/// One caller's write, queued for the writer and answered by the syncer.
trait Write: Send {
    /// Runs the write inside the group's transaction (again, after a rollback of its group);
    /// `false` when it failed or panicked.
    fn run(&mut self, conn: &WriteConn<'_>) -> bool;
    /// Whether it may run a second time ([`Writer::write`]).
    fn repeatable(&self) -> bool;
    /// A write that panicked is not run again.
    fn panicked(&self) -> bool;
    /// Answers the caller with the write's result, or the commit's error.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Call<T, F> {
    work: F,
    repeatable: bool,
    result: Option<Result<T, StoreError>>,
    panicked: bool,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Call<T, F>
where
    T: Send,
    F: FnMut(&WriteConn<'_>) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &WriteConn<'_>) -> bool {
        // A panicking write is a bug, but it must not take the only writer down with it.
        match panic::catch_unwind(AssertUnwindSafe(|| (self.work)(conn))) {
            Ok(result) => {
                let ok = result.is_ok();
                self.result = Some(result);
                ok
            }
            Err(_) => {
                self.panicked = true;
                self.result = Some(Err(StoreError::Backend("a write panicked".into())));
                false
            }
        }
    }

    fn repeatable(&self) -> bool {
        self.repeatable
    }

    fn panicked(&self) -> bool {
        self.panicked
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let Self {
            work,
            result,
            reply,
            ..
        } = *self;
        // What the write holds is dropped before its caller hears back, so that the caller
        // is the only owner left of what it shared with the write (`Arc::try_unwrap`).
        drop(work);
        let result = match result {
            Some(result) => commit.and(result),
            None => commit.and(Err(StoreError::Backend("the write did not run".into()))),
        };
        let _ = reply.send(result);
    }
}

type Queued = Box<dyn Write>;

/// A committed group on its way to the disk, with whom to answer once it is there.
struct Committed {
    /// The commit's own result (an error needs no fsync).
    outcome: Result<(), String>,
    writes: Vec<Queued>,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Queued>,
}

impl Writer {
    /// Starts the writer over `conn` (opened with `synchronous = NORMAL`) and the syncer of
    /// its WAL file `wal`.
    pub fn start(conn: Connection, wal: PathBuf, top_up: TopUp) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Queued>();
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

    /// Runs `work` in the next group and answers once the group is durable. `work` may run
    /// twice: when another write of its group fails, the group is rolled back and run again.
    /// Its effects outside the database must be none (or harmless to repeat); use
    /// [`Self::write_once`] otherwise.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteConn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(work, true).await
    }

    /// Like [`Self::write`] for a write that must run only once; its group runs with a
    /// savepoint around each write from the start.
    pub async fn write_once<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteConn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let mut work = Some(work);
        let once = move |conn: &WriteConn<'_>| match work.take() {
            Some(work) => work(conn),
            None => Err(StoreError::Backend("a write ran twice".into())),
        };
        self.queue(once, false).await
    }

    async fn queue<T, F>(&self, work: F, repeatable: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteConn<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            work,
            repeatable,
            result: None,
            panicked: false,
            reply,
        };
        self.jobs
            .send(Box::new(call))
            .map_err(|_| StoreError::Backend("the writer thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the writer thread dropped a write".into()))?
    }
}

fn run(
    conn: Connection,
    queue: mpsc::Receiver<Queued>,
    committed: mpsc::Sender<Committed>,
    top_up: TopUp,
) {
    let conn = WriteConn {
        conn: &conn,
        prepared: Prepared::new(&conn),
    };
    while let Ok(first) = queue.recv() {
        // Sized by what is waiting: the vector goes to the syncer with the group.
        let mut writes = vec![first];
        writes.extend(std::iter::from_fn(|| queue.try_recv().ok()).take(MAX_GROUP - 1));
        let outcome = commit_group(&conn, &mut writes);
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = writes.len(), "sqlite group commit failed");
        }
        let done = Committed {
            outcome: outcome.map_err(|e| e.to_string()),
            writes,
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
    for write in group.writes {
        write.answer(result.clone().map_err(StoreError::Backend));
    }
}

/// Runs the group in one transaction and commits it: without savepoints when every write
/// may run twice, and again with one around each write when one of them failed.
fn commit_group(conn: &WriteConn<'_>, writes: &mut [Queued]) -> Result<(), StoreError> {
    if writes.iter().all(|w| w.repeatable()) {
        conn.run(Hot::Begin)?;
        if writes.iter_mut().all(|w| w.run(conn)) {
            return commit(conn);
        }
        rollback(conn);
    }
    conn.run(Hot::Begin)?;
    let result = run_each_in_savepoint(conn, writes);
    if result.is_err() {
        rollback(conn);
        return result;
    }
    commit(conn)
}

fn commit(conn: &WriteConn<'_>) -> Result<(), StoreError> {
    let result = conn.run(Hot::Commit);
    if result.is_err() {
        rollback(conn);
    }
    result
}

/// Rare enough to be parsed at each use.
fn rollback(conn: &WriteConn<'_>) {
    let _ = conn.execute_batch("ROLLBACK");
}

/// Each write in a savepoint of its own: a failed one is rolled back alone.
fn run_each_in_savepoint(conn: &WriteConn<'_>, writes: &mut [Queued]) -> Result<(), StoreError> {
    for write in writes.iter_mut().filter(|w| !w.panicked()) {
        conn.run(Hot::Savepoint)?;
        if !write.run(conn) {
            conn.run(Hot::RollbackTo)?;
        }
        conn.run(Hot::Release)?;
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

    /// Holds the writer inside a write until the returned sender is dropped, so that the
    /// writes queued meanwhile make one group.
    fn hold(w: &Writer) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = mpsc::channel::<()>();
        let held = std::sync::Mutex::new(held);
        let w = w.clone();
        let task = tokio::spawn(async move {
            w.write(move |_| {
                let _ = held.lock().unwrap().recv();
                Ok(())
            })
            .await
            .unwrap();
        });
        (release, task)
    }

    /// A writer over a fresh database, and a count of the runs of `counted_insert`s.
    fn counting() -> (
        tempfile::TempDir,
        Writer,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        (dir, w, std::sync::Arc::default())
    }

    fn counted_insert(
        runs: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
        v: i64,
    ) -> impl FnMut(&WriteConn<'_>) -> Result<(), StoreError> + Send + 'static {
        let runs = runs.clone();
        move |c| {
            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            insert(c, v)
        }
    }

    async fn values(w: &Writer) -> Vec<i64> {
        w.write(|c| {
            let mut stmt = c.prepare("SELECT v FROM t ORDER BY rowid")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .await
        .unwrap()
    }

    /// Answers the writes `queue` sends while the writer is held inside another write, so
    /// that they make one group.
    async fn in_one_group<T, F, Fut>(w: &Writer, queue: F) -> T
    where
        F: FnOnce(Writer) -> Fut,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (release, held) = hold(w);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let answers = tokio::spawn(queue(w.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(release);
        held.await.unwrap();
        answers.await.unwrap()
    }

    /// Writes a row, then fails.
    fn failing(c: &WriteConn<'_>) -> Result<(), StoreError> {
        insert(c, 2)?;
        Err(StoreError::NotFound)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_with_a_failing_write_runs_again_and_commits_the_others_once() {
        let (_dir, w, runs) = counting();
        let (before, after) = (counted_insert(&runs, 1), counted_insert(&runs, 3));
        let (before, failed, after) = in_one_group(&w, |q| async move {
            tokio::join!(q.write(before), q.write(failing), q.write(after))
        })
        .await;
        assert!(before.is_ok() && after.is_ok());
        assert!(matches!(failed, Err(StoreError::NotFound)));
        // The first ran, the group was rolled back at the failure and ran again with
        // savepoints: three runs of the two good writes, each written once.
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(values(&w).await, [1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_must_run_once_runs_once_beside_a_failing_write() {
        let (_dir, w, runs) = counting();
        let mut once = counted_insert(&runs, 1);
        let (once, failed, plain) = in_one_group(&w, |q| async move {
            tokio::join!(
                q.write_once(move |c| once(c)),
                q.write(failing),
                q.write(|c| insert(c, 3)),
            )
        })
        .await;
        assert!(once.is_ok() && plain.is_ok());
        assert!(failed.is_err());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(values(&w).await, [1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_lets_go_of_what_it_holds_before_its_caller_hears_back() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(dir.path());
        for v in 0..200 {
            let shared = std::sync::Arc::new(v);
            let held = shared.clone();
            w.write(move |c| insert(c, *held)).await.unwrap();
            assert_eq!(std::sync::Arc::strong_count(&shared), 1, "write {v}");
        }
    }
}
