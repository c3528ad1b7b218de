//! The statements of the writer's hot path (a group's frame and a charge's statements), each
//! prepared at its first use and kept for the writer's life. `prepare_cached` hashes the SQL
//! text, copies it into a new key and hashes it again at every use: over a charge's seven
//! statements that was about 5% of the writer's time (docs/PERFORMANCE.md, tenth round).
//! Prepared lazily, so that a store opened without migrations still opens.

use std::cell::{OnceCell, RefCell, RefMut};

use rusqlite::{Connection, Statement};

use super::outbox::INSERT_NOTIFICATION;
use super::transactions::{COUNT_SPENDING, INSERT_TRANSACTION, SPENT, TX_BY_EXT};
use crate::StoreError;

#[derive(Clone, Copy)]
pub(super) enum Hot {
    Begin,
    Commit,
    Savepoint,
    RollbackTo,
    Release,
    TxByExt,
    Spent,
    InsertTransaction,
    CountSpending,
    InsertNotification,
}

const HOT: usize = Hot::InsertNotification as usize + 1;

impl Hot {
    fn sql(self) -> &'static str {
        match self {
            Self::Begin => "BEGIN IMMEDIATE",
            Self::Commit => "COMMIT",
            Self::Savepoint => "SAVEPOINT w",
            Self::RollbackTo => "ROLLBACK TO w",
            Self::Release => "RELEASE w",
            Self::TxByExt => TX_BY_EXT,
            Self::Spent => SPENT,
            Self::InsertTransaction => INSERT_TRANSACTION,
            Self::CountSpending => COUNT_SPENDING,
            Self::InsertNotification => INSERT_NOTIFICATION,
        }
    }
}

pub(super) struct Prepared<'c> {
    conn: &'c Connection,
    slots: [OnceCell<RefCell<Statement<'c>>>; HOT],
}

impl<'c> Prepared<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            slots: std::array::from_fn(|_| OnceCell::new()),
        }
    }

    pub fn get(&self, hot: Hot) -> Result<RefMut<'_, Statement<'c>>, StoreError> {
        let slot = &self.slots[hot as usize];
        let cell = match slot.get() {
            Some(cell) => cell,
            None => {
                let stmt = self.conn.prepare(hot.sql())?;
                slot.get_or_init(|| RefCell::new(stmt))
            }
        };
        cell.try_borrow_mut()
            .map_err(|_| StoreError::Backend("a prepared statement is already in use".into()))
    }
}
