//! A VFS over the platform's default one that writes the writer's WAL frames of a commit in
//! one `pwrite` per 64 KiB instead of two per frame (SQLite writes each frame's 24-byte header
//! and its page separately): the kernel's per-write work was a fifth of the writer thread's
//! time (docs/PERFORMANCE.md, tenth round). Every other file, and every other call on the WAL,
//! goes to the default VFS unchanged.
//!
//! Frames are gathered while they extend one contiguous run and written out:
//! - with the page that follows a commit frame's header (a header whose "database size after
//!   commit" field is not zero): SQLite publishes a commit in the WAL index only after writing
//!   that page, so readers and the checkpointer never look for frames still in memory;
//! - before any other call on the WAL (read, size, sync, truncate, file control, close), and
//!   before a write that does not extend the run;
//! - when the run reaches `MAX_RUN`.
//!
//! A commit header that does not extend a run (a transaction's first write, or the checksum
//! rewrite that re-writes headers in place after a read) is written at once. A failed write
//! fails the SQLite call it happened in; since that call may be a read (of a frame spilled by
//! a large transaction), the file then refuses reads and writes past the lost run until
//! SQLite writes at or before it again, so the transaction cannot commit over the hole.
//!
//! A crash leaves no more than a crash between SQLite's own writes would: frames without the
//! commit frame after them are not replayed by recovery, whether written or still gathered.
//!
//! Written by hand because no crate offers a pass-through VFS over rusqlite; it is the only
//! unsafe code of the workspace, kept to this module. The tests write through it, then open a
//! copy of the files as a crash would leave them and find every committed row.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

use crate::StoreError;

pub(super) const NAME: &CStr = c"dcbhub-batched-wal";

/// The most bytes gathered before they are written regardless (a large transaction's frames).
const MAX_RUN: usize = 4 << 20;
/// The most bytes of one write to the default VFS: its `unixWrite` keeps only the low 17 bits
/// of a length (SQLite itself never writes more than a page and a frame header at once).
const PIECE: usize = 64 << 10;
const FRAME_HEADER: usize = 24;

/// A WAL file: the default VFS's file lives `OFFSET` bytes after the start of the
/// allocation SQLite hands to `xOpen`; any other file is the default VFS's file itself.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    run: Vec<u8>,
    run_at: i64,
    /// The last write was a commit frame's header: the next write completes the commit.
    after_commit_header: bool,
    /// A run that could not be written started here: past it the file lacks frames SQLite
    /// was told were written, so reads and writes past it fail until SQLite writes at or
    /// before it again (the next transaction after the rollback, or a restarted WAL).
    lost_from: Option<i64>,
}

const OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// Registers the VFS once per process; writer connections open with [`NAME`].
pub(super) fn register() -> Result<(), StoreError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        // SAFETY: runs once; reads the default VFS and registers a leaked copy of it.
        .get_or_init(|| unsafe { register_once() })
        .clone()
        .map_err(StoreError::Backend)
}

unsafe fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find initialises SQLite and returns a VFS that lives forever.
    let real = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if real.is_null() {
        return Err("SQLite has no default VFS".into());
    }
    // SAFETY: `real` points at a valid VFS; the copy keeps its methods, none of which use
    // the VFS pointer they are given except xOpen, replaced here.
    let mut vfs = unsafe { ptr::read(real) };
    let inner_size = usize::try_from(vfs.szOsFile).map_err(|e| e.to_string())?;
    vfs.szOsFile = c_int::try_from(OFFSET + inner_size).map_err(|e| e.to_string())?;
    vfs.pNext = ptr::null_mut();
    vfs.zName = NAME.as_ptr();
    vfs.pAppData = real.cast::<c_void>();
    vfs.xOpen = Some(open);
    // SAFETY: the VFS is leaked, so it outlives every connection that uses it.
    let rc = unsafe { ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(format!("cannot register the batched-WAL VFS (code {rc})"))
    }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes our VFS, whose pAppData is the default VFS, and an allocation of
    // szOsFile bytes for the file.
    unsafe {
        let real = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
        let Some(real_open) = (*real).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return real_open(real, name, file, flags, out_flags);
        }
        let inner = file.cast::<u8>().add(OFFSET).cast::<ffi::sqlite3_file>();
        let rc = real_open(real, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            (*file).pMethods = ptr::null();
            return rc;
        }
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                inner,
                run: Vec::new(),
                run_at: 0,
                after_commit_header: false,
                lost_from: None,
            },
        );
        ffi::SQLITE_OK
    }
}

/// # Safety
/// `file` is a WAL file opened by [`open`].
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: the caller's promise.
    unsafe { &mut *file.cast::<WalFile>() }
}

/// # Safety
/// `inner` is an open file of the default VFS.
unsafe fn methods<'a>(inner: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    // SAFETY: the caller's promise; an open file has its methods.
    unsafe { &*(*inner).pMethods }
}

impl WalFile {
    fn run_end(&self) -> i64 {
        self.run_at + i64::try_from(self.run.len()).unwrap_or(i64::MAX)
    }

    /// Writes the gathered run, if any, in pieces of at most `PIECE` bytes.
    fn flush(&mut self) -> c_int {
        if self.run.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut at = self.run_at;
        let run = std::mem::take(&mut self.run);
        for piece in run.chunks(PIECE) {
            rc = self.write_through(piece, at);
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += i64::try_from(piece.len()).unwrap_or(i64::MAX);
        }
        if rc != ffi::SQLITE_OK {
            self.lost_from = Some(self.lost_from.map_or(self.run_at, |l| l.min(self.run_at)));
        }
        // The buffer is kept for the next run.
        self.run = run;
        self.run.clear();
        rc
    }

    /// Whether `[at, at + len)` reaches into frames that could not be written.
    fn reaches_lost(&self, at: i64, len: c_int) -> bool {
        self.lost_from
            .is_some_and(|lost| at + i64::from(len) > lost)
    }

    fn write(&mut self, data: &[u8], at: i64) -> c_int {
        match self.lost_from {
            Some(lost) if at <= lost => self.lost_from = None,
            Some(_) => return ffi::SQLITE_IOERR_WRITE,
            None => {}
        }
        let completes_commit = self.after_commit_header;
        let commit_header = data.len() == FRAME_HEADER && data[4..8] != [0; 4];
        self.after_commit_header = commit_header;
        let extends = !self.run.is_empty() && at == self.run_end();
        if !extends {
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            if commit_header || completes_commit {
                return self.write_through(data, at);
            }
            self.run_at = at;
        }
        self.run.extend_from_slice(data);
        if completes_commit || self.run.len() >= MAX_RUN {
            return self.flush();
        }
        ffi::SQLITE_OK
    }

    fn write_through(&mut self, data: &[u8], at: i64) -> c_int {
        let Ok(len) = c_int::try_from(data.len()) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        // SAFETY: `inner` is open; `data` holds `len` bytes.
        unsafe {
            match methods(self.inner).xWrite {
                Some(write) => write(self.inner, data.as_ptr().cast(), len, at),
                None => ffi::SQLITE_IOERR_WRITE,
            }
        }
    }
}

/// Passes the call on to the default VFS's file.
macro_rules! passed_on {
    ($file:ident, $method:ident, $missing:expr $(, $arg:ident)*) => {{
        // SAFETY: SQLite calls these methods only on files `open` set them on.
        let w = unsafe { wal($file) };
        // SAFETY: as above; the arguments are SQLite's own.
        unsafe {
            match methods(w.inner).$method {
                Some(f) => f(w.inner $(, $arg)*),
                None => $missing,
            }
        }
    }};
}

/// Writes the run, then passes the call on to the default VFS's file.
macro_rules! flushed_then {
    ($file:ident, $method:ident $(, $arg:ident)*) => {{
        // SAFETY: SQLite calls these methods only on files `open` set them on.
        let rc = unsafe { wal($file) }.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        passed_on!($file, $method, ffi::SQLITE_IOERR $(, $arg)*)
    }};
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite calls this only on files `open` set it on.
    let flushed = unsafe { wal(file) }.flush();
    let closed = passed_on!(file, xClose, ffi::SQLITE_OK);
    // SAFETY: SQLite closes a file once; the WalFile is dropped here and never used again.
    unsafe {
        ptr::drop_in_place(file.cast::<WalFile>());
        (*file).pMethods = ptr::null();
    }
    if flushed == ffi::SQLITE_OK {
        closed
    } else {
        flushed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite calls this only on files `open` set it on.
    if unsafe { wal(file) }.reaches_lost(offset, amount) {
        return ffi::SQLITE_IOERR_READ;
    }
    flushed_then!(file, xRead, buf, amount, offset)
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes a WAL file and `amount` readable bytes at `buf`.
    unsafe {
        let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
        wal(file).write(data, offset)
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    flushed_then!(file, xTruncate, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed_then!(file, xSync, flags)
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    flushed_then!(file, xFileSize, size)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    passed_on!(file, xLock, ffi::SQLITE_OK, level)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    passed_on!(file, xUnlock, ffi::SQLITE_OK, level)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    passed_on!(file, xCheckReservedLock, ffi::SQLITE_OK, out)
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed_then!(file, xFileControl, op, arg)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    passed_on!(file, xSectorSize, 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    passed_on!(file, xDeviceCharacteristics, 0)
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    passed_on!(file, xShmMap, ffi::SQLITE_IOERR, region, size, extend, out)
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    passed_on!(file, xShmLock, ffi::SQLITE_IOERR, offset, n, flags)
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    passed_on!(file, xShmBarrier, ())
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    passed_on!(file, xShmUnmap, ffi::SQLITE_OK, delete)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    flushed_then!(file, xFetch, offset, amount, out)
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    passed_on!(file, xUnfetch, ffi::SQLITE_OK, offset, page)
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use rusqlite::Connection;

    use super::super::wal_path;
    use super::*;

    /// The writer's own connection (this VFS, its pragmas) over a table with a random index.
    fn open(path: &Path) -> Connection {
        let conn = super::super::open_writer(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL);
             CREATE INDEX t_v ON t (v);",
        )
        .unwrap();
        conn
    }

    /// The database and its WAL as a crash right now would leave them.
    fn crash_image(from: &Path, to: &Path) -> Connection {
        std::fs::copy(from, to).unwrap();
        std::fs::copy(wal_path(from), wal_path(to)).unwrap();
        Connection::open(to).unwrap()
    }

    fn rows(conn: &Connection) -> (i64, i64) {
        conn.query_row("SELECT COUNT(*), COALESCE(SUM(k), 0) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    }

    #[test]
    fn every_committed_frame_is_in_the_wal_file_when_the_commit_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = open(&path);
        let mut expected = (0, 0);
        for round in 0..60_i64 {
            // Small and large transactions; random index keys spread the dirty pages.
            let n = if round % 10 == 9 { 3000 } else { round % 7 + 1 };
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            for i in 0..n {
                let k = round * 10_000 + i;
                let v: Vec<u8> = (0..64).map(|j| ((k * 7919 + j) % 251) as u8).collect();
                conn.execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    rusqlite::params![k, v],
                )
                .unwrap();
                expected.0 += 1;
                expected.1 += k;
            }
            conn.execute_batch("COMMIT").unwrap();
            if round % 20 == 19 {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
            }
            let image = crash_image(&path, &dir.path().join(format!("image{round}")));
            assert_eq!(rows(&image), expected, "round {round}");
            let ok: String = image
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok", "round {round}");
            assert_eq!(rows(&conn), expected, "round {round}: the writer itself");
        }
    }

    unsafe extern "C" fn full(
        _: *mut ffi::sqlite3_file,
        _: *const c_void,
        _: c_int,
        _: ffi::sqlite3_int64,
    ) -> c_int {
        ffi::SQLITE_FULL
    }

    #[test]
    fn frames_that_could_not_be_written_block_the_transaction_until_it_starts_over() {
        // SAFETY: an all-None method table with a failing xWrite, on a file that lives for
        // the test.
        let methods = ffi::sqlite3_io_methods {
            xWrite: Some(full),
            ..unsafe { std::mem::zeroed() }
        };
        let mut inner = ffi::sqlite3_file { pMethods: &methods };
        let mut w = WalFile {
            base: ffi::sqlite3_file {
                pMethods: ptr::null(),
            },
            inner: &mut inner,
            run: Vec::new(),
            run_at: 0,
            after_commit_header: false,
            lost_from: None,
        };
        let header = [0u8; FRAME_HEADER];
        let page = [7u8; 2048];
        assert_eq!(
            w.write(&header, 32),
            ffi::SQLITE_OK,
            "gathered, not written"
        );
        assert_eq!(w.write(&page, 56), ffi::SQLITE_OK);
        // A read (of a spilled frame) writes the run first, and the disk is full.
        assert_eq!(w.flush(), ffi::SQLITE_FULL);
        assert!(w.reaches_lost(56, 2048), "the lost frame cannot be read");
        assert!(!w.reaches_lost(0, 32), "what lies before it can");
        assert_eq!(
            w.write(&header, 2104),
            ffi::SQLITE_IOERR_WRITE,
            "the transaction cannot go on past the hole"
        );
        assert_eq!(
            w.write(&header, 32),
            ffi::SQLITE_OK,
            "after the rollback, frames are written from the same place again"
        );
        assert_eq!(w.lost_from, None);
    }

    #[test]
    fn a_transaction_larger_than_the_page_cache_reads_back_its_own_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let conn = open(&path);
        // A tiny cache spills dirty pages into the WAL mid-transaction, then reads and
        // rewrites them (the checksum rewrite at commit).
        conn.execute_batch("PRAGMA cache_size = 10; BEGIN IMMEDIATE")
            .unwrap();
        for k in 0..20_000_i64 {
            let v = vec![(k % 251) as u8; 100];
            conn.execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![k, v],
            )
            .unwrap();
        }
        conn.execute("UPDATE t SET v = zeroblob(90) WHERE k % 3 = 0", [])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let expected = (20_000, (0..20_000_i64).sum());
        assert_eq!(rows(&conn), expected);
        let image = crash_image(&path, &dir.path().join("image"));
        assert_eq!(rows(&image), expected);
        let ok: String = image
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}
