use async_trait::async_trait;
use dcbhub_domain::{ApiKeyHash, ConsentPolicy, PartnerCode, PartnerStatus, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use crate::records::corrupt;
use crate::{ApiKeyRecord, AuthRecord, NewPartner, PartnerRecord, PartnerStore, StoreError};

macro_rules! partner_columns {
    () => {
        "p.id, p.code, p.name, p.status, p.consent_policy, p.receipts_enabled, p.created_at"
    };
}

fn partner_from_row(row: &Row<'_>) -> rusqlite::Result<Result<PartnerRecord, StoreError>> {
    let code: String = row.get(1)?;
    let status: String = row.get(3)?;
    let consent: String = row.get(4)?;
    Ok((|| {
        Ok(PartnerRecord {
            id: row.get(0)?,
            code: PartnerCode::parse(&code).map_err(corrupt)?,
            name: row.get(2)?,
            status: PartnerStatus::parse(&status).map_err(corrupt)?,
            consent: ConsentPolicy::parse(&consent).map_err(corrupt)?,
            receipts_enabled: row.get::<_, i64>(5)? != 0,
            created_at: Timestamp::from_unix_millis(row.get(6)?),
        })
    })())
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<Result<ApiKeyRecord, StoreError>> {
    let code: String = row.get(1)?;
    Ok((|| {
        Ok(ApiKeyRecord {
            id: row.get(0)?,
            partner_code: PartnerCode::parse(&code).map_err(corrupt)?,
            created_at: Timestamp::from_unix_millis(row.get(2)?),
            revoked_at: row
                .get::<_, Option<i64>>(3)?
                .map(Timestamp::from_unix_millis),
        })
    })())
}

fn partner_by_code(conn: &Connection, code: &str) -> Result<Option<PartnerRecord>, StoreError> {
    conn.prepare_cached(concat!(
        "SELECT ",
        partner_columns!(),
        " FROM partners p WHERE p.code = ?1"
    ))?
    .query_row([code], partner_from_row)
    .optional()?
    .transpose()
}

fn key_by_id(
    conn: &Connection,
    code: &str,
    key_id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    conn.prepare_cached(
        "SELECT k.id, p.code, k.created_at, k.revoked_at FROM api_keys k
         JOIN partners p ON p.id = k.partner_id WHERE p.code = ?1 AND k.id = ?2",
    )?
    .query_row([code, key_id], key_from_row)
    .optional()?
    .transpose()
}

fn bump_config_version(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE config_version SET version = version + 1 WHERE id = 1")?
        .execute([])?;
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn create_partner(&self, new: NewPartner) -> Result<PartnerRecord, StoreError> {
        self.writer
            .write(move |conn| {
                let now = Timestamp::now().unix_millis();
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO partners (code, name, status, consent_policy, receipts_enabled, created_at, updated_at)
                         VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?5)",
                    )?
                    .execute(params![
                        new.code.as_str(),
                        new.name,
                        new.consent.as_str(),
                        i64::from(new.receipts_enabled),
                        now
                    ]);
                match inserted {
                    Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate("partners.code")),
                    other => other?,
                };
                let partner_id = conn.last_insert_rowid();
                conn.prepare_cached(
                    "INSERT INTO api_keys (id, partner_id, key_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![new.first_key_id, partner_id, new.first_key_hash.as_str(), now])?;
                bump_config_version(conn)?;
                partner_by_code(conn, new.code.as_str())?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn list_partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT ",
                partner_columns!(),
                " FROM partners p ORDER BY p.code"
            ))?;
            let rows = stmt.query_map([], partner_from_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(|r| r))
                .collect()
        })
    }

    async fn partner_by_code(
        &self,
        code: &PartnerCode,
    ) -> Result<Option<PartnerRecord>, StoreError> {
        self.readers
            .read(|conn| partner_by_code(conn, code.as_str()))
    }

    async fn set_partner_status(
        &self,
        code: &PartnerCode,
        status: PartnerStatus,
    ) -> Result<PartnerRecord, StoreError> {
        let code = code.clone();
        self.writer
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE partners SET status = ?1, updated_at = ?2 WHERE code = ?3",
                    )?
                    .execute(params![
                        status.as_str(),
                        Timestamp::now().unix_millis(),
                        code.as_str()
                    ])?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                bump_config_version(conn)?;
                partner_by_code(conn, code.as_str())?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn create_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
        hash: &ApiKeyHash,
    ) -> Result<ApiKeyRecord, StoreError> {
        let (code, key_id, hash) = (code.clone(), key_id.to_owned(), hash.clone());
        self.writer
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO api_keys (id, partner_id, key_hash, created_at)
                         SELECT ?1, id, ?2, ?3 FROM partners WHERE code = ?4",
                    )?
                    .execute(params![
                        key_id,
                        hash.as_str(),
                        Timestamp::now().unix_millis(),
                        code.as_str()
                    ]);
                let count = match inserted {
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::Duplicate("api_keys"));
                    }
                    other => other?,
                };
                if count == 0 {
                    return Err(StoreError::NotFound);
                }
                bump_config_version(conn)?;
                key_by_id(conn, code.as_str(), &key_id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn revoke_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        let (code, key_id) = (code.clone(), key_id.to_owned());
        self.writer
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE api_keys SET revoked_at = ?1
                         WHERE id = ?2 AND revoked_at IS NULL
                           AND partner_id = (SELECT id FROM partners WHERE code = ?3)",
                    )?
                    .execute(params![
                        Timestamp::now().unix_millis(),
                        key_id,
                        code.as_str()
                    ])?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                bump_config_version(conn)?;
                key_by_id(conn, code.as_str(), &key_id)?.ok_or(StoreError::NotFound)
            })
            .await
    }

    async fn list_api_keys(&self, code: &PartnerCode) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.readers.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT k.id, p.code, k.created_at, k.revoked_at FROM api_keys k
                 JOIN partners p ON p.id = k.partner_id WHERE p.code = ?1 ORDER BY k.created_at, k.id",
            )?;
            let rows = stmt.query_map([code.as_str()], key_from_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(|r| r)).collect()
        })
    }

    async fn find_api_key(&self, hash: &ApiKeyHash) -> Result<Option<AuthRecord>, StoreError> {
        self.readers.read(|conn| {
            conn.prepare_cached(concat!(
                "SELECT ",
                partner_columns!(),
                ", k.id FROM api_keys k JOIN partners p ON p.id = k.partner_id
                 WHERE k.key_hash = ?1 AND k.revoked_at IS NULL"
            ))?
            .query_row([hash.as_str()], |row| {
                let key_id: String = row.get(7)?;
                Ok(partner_from_row(row)?.map(|partner| AuthRecord { key_id, partner }))
            })
            .optional()?
            .transpose()
        })
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        self.readers.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT version FROM config_version WHERE id = 1")?
                .query_row([], |r| r.get(0))?)
        })
    }
}
