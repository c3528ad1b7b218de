//! After a run: every acknowledged charge is in the database exactly once, as `SUCCESS`.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use sqlx::Connection as _;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub acknowledged: usize,
    /// Acknowledged and stored exactly once as `SUCCESS`.
    pub exactly_once: usize,
    pub missing: usize,
    pub duplicated: usize,
    pub not_success: usize,
    /// Rows of the partner that were never acknowledged (answered with an error, or cut off).
    pub unacknowledged_rows: usize,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.not_success == 0
            && self.exactly_once == self.acknowledged
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acknowledged, {} stored exactly once as SUCCESS, {} missing, {} duplicated, \
             {} not SUCCESS ({} stored rows never acknowledged)",
            self.acknowledged,
            self.exactly_once,
            self.missing,
            self.duplicated,
            self.not_success,
            self.unacknowledged_rows
        )
    }
}

/// One stored `extTransactionID`: how many rows carry it and how many of them are `SUCCESS`.
pub struct Stored {
    pub rows: i64,
    pub successes: i64,
}

pub fn judge(acked: &[String], mut stored: HashMap<String, Stored>) -> Verdict {
    let mut v = Verdict {
        acknowledged: acked.len(),
        ..Verdict::default()
    };
    for id in acked {
        match stored.remove(id) {
            None => v.missing += 1,
            Some(s) if s.rows > 1 => v.duplicated += 1,
            Some(s) if s.successes != 1 => v.not_success += 1,
            Some(_) => v.exactly_once += 1,
        }
    }
    v.unacknowledged_rows = stored.len();
    v.duplicated += stored.values().filter(|s| s.rows > 1).count();
    v
}

const QUERY: &str = "
    SELECT t.ext_transaction_id,
           COUNT(*),
           SUM(CASE WHEN t.status = 'SUCCESS' THEN 1 ELSE 0 END)
    FROM transactions t JOIN partners p ON p.id = t.partner_id
    WHERE p.code = $1
    GROUP BY t.ext_transaction_id";

/// Reads the embedded store's file read-only.
pub fn sqlite(db: &Path, partner_code: &str, acked: &[String]) -> anyhow::Result<Verdict> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(&QUERY.replace("$1", "?1"))?;
    let rows = stmt.query_map([partner_code], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Stored {
                rows: r.get(1)?,
                successes: r.get(2)?,
            },
        ))
    })?;
    let stored = rows.collect::<Result<HashMap<_, _>, _>>()?;
    Ok(judge(acked, stored))
}

pub async fn postgres(url: &str, partner_code: &str, acked: &[String]) -> anyhow::Result<Verdict> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(QUERY)
        .bind(partner_code)
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    let stored = rows
        .into_iter()
        .map(|(id, rows, successes)| (id, Stored { rows, successes }))
        .collect();
    Ok(judge(acked, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(entries: &[(&str, i64, i64)]) -> HashMap<String, Stored> {
        entries
            .iter()
            .map(|(id, rows, successes)| {
                (
                    (*id).to_owned(),
                    Stored {
                        rows: *rows,
                        successes: *successes,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn judges_each_kind_of_fault() {
        let acked: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let v = judge(
            &acked,
            stored(&[("a", 1, 1), ("b", 2, 2), ("c", 1, 0), ("x", 1, 0)]),
        );
        assert_eq!(
            v,
            Verdict {
                acknowledged: 4,
                exactly_once: 1,
                missing: 1,
                duplicated: 1,
                not_success: 1,
                unacknowledged_rows: 1,
            }
        );
        assert!(!v.passed());
        assert!(judge(&acked[..1], stored(&[("a", 1, 1)])).passed());
    }

    #[test]
    fn reads_a_sqlite_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path)?;
        conn.execute_batch(
            "CREATE TABLE partners (id INTEGER PRIMARY KEY, code TEXT);
             CREATE TABLE transactions (partner_id INTEGER, ext_transaction_id TEXT, status TEXT);
             INSERT INTO partners VALUES (1, 'P1'), (2, 'P2');
             INSERT INTO transactions VALUES (1, 'a', 'SUCCESS'), (1, 'b', 'PENDING'),
                                             (2, 'c', 'SUCCESS');",
        )?;
        drop(conn);
        let acked: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let v = sqlite(&path, "P1", &acked)?;
        assert_eq!((v.exactly_once, v.not_success, v.missing), (1, 1, 1));
        Ok(())
    }
}
