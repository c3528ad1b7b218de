use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::StoreError;

/// Connections kept for reuse; more are opened under load and closed when the pool is full.
const KEEP: usize = 8;

/// Read-only connections. A read runs on the calling task's thread: in WAL mode a point
/// lookup takes microseconds, less than a hop to a blocking thread would cost.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::with_capacity(KEEP)),
        }
    }

    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = match self.idle.lock().pop() {
            Some(c) => c,
            None => super::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < KEEP {
            idle.push(conn);
        }
        result
    }
}
