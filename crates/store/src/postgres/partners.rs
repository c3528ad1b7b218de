use async_trait::async_trait;
use dcbhub_domain::{ApiKeyHash, ConsentPolicy, PartnerCode, PartnerStatus, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PgStore, is_unique_violation};
use crate::records::corrupt;
use crate::{ApiKeyRecord, AuthRecord, NewPartner, PartnerRecord, PartnerStore, StoreError};

macro_rules! partner_columns {
    () => {
        "p.id, p.code, p.name, p.status, p.consent_policy, p.receipts_enabled, p.created_at"
    };
}

fn partner_from_row(row: &PgRow) -> Result<PartnerRecord, StoreError> {
    Ok(PartnerRecord {
        id: row.try_get(0)?,
        code: PartnerCode::parse(row.try_get(1)?).map_err(corrupt)?,
        name: row.try_get(2)?,
        status: PartnerStatus::parse(row.try_get(3)?).map_err(corrupt)?,
        consent: ConsentPolicy::parse(row.try_get(4)?).map_err(corrupt)?,
        receipts_enabled: row.try_get(5)?,
        created_at: Timestamp::from_unix_millis(row.try_get(6)?),
    })
}

fn key_from_row(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: row.try_get(0)?,
        partner_code: PartnerCode::parse(row.try_get(1)?).map_err(corrupt)?,
        created_at: Timestamp::from_unix_millis(row.try_get(2)?),
        revoked_at: row
            .try_get::<Option<i64>, _>(3)?
            .map(Timestamp::from_unix_millis),
    })
}

async fn partner_by_code(
    conn: &mut PgConnection,
    code: &str,
) -> Result<Option<PartnerRecord>, StoreError> {
    sqlx::query(concat!(
        "SELECT ",
        partner_columns!(),
        " FROM partners p WHERE p.code = $1"
    ))
    .bind(code)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(partner_from_row)
    .transpose()
}

async fn key_by_id(
    conn: &mut PgConnection,
    code: &str,
    key_id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    sqlx::query(
        "SELECT k.id, p.code, k.created_at, k.revoked_at FROM api_keys k
         JOIN partners p ON p.id = k.partner_id WHERE p.code = $1 AND k.id = $2",
    )
    .bind(code)
    .bind(key_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(key_from_row)
    .transpose()
}

async fn bump_config_version(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl PartnerStore for PgStore {
    async fn create_partner(&self, new: NewPartner) -> Result<PartnerRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = Timestamp::now().unix_millis();
        let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO partners (code, name, status, consent_policy, receipts_enabled, created_at, updated_at)
             VALUES ($1, $2, 'active', $3, $4, $5, $5) RETURNING id",
        )
        .bind(new.code.as_str())
        .bind(&new.name)
        .bind(new.consent.as_str())
        .bind(new.receipts_enabled)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let partner_id = match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Duplicate("partners.code"));
            }
            other => other?,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, partner_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&new.first_key_id)
        .bind(partner_id)
        .bind(new.first_key_hash.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        bump_config_version(&mut tx).await?;
        let partner = partner_by_code(&mut tx, new.code.as_str())
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(partner)
    }

    async fn list_partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            partner_columns!(),
            " FROM partners p ORDER BY p.code"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(partner_from_row)
        .collect()
    }

    async fn partner_by_code(
        &self,
        code: &PartnerCode,
    ) -> Result<Option<PartnerRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        partner_by_code(&mut conn, code.as_str()).await
    }

    async fn set_partner_status(
        &self,
        code: &PartnerCode,
        status: PartnerStatus,
    ) -> Result<PartnerRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed =
            sqlx::query("UPDATE partners SET status = $1, updated_at = $2 WHERE code = $3")
                .bind(status.as_str())
                .bind(Timestamp::now().unix_millis())
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        bump_config_version(&mut tx).await?;
        let partner = partner_by_code(&mut tx, code.as_str())
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(partner)
    }

    async fn create_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
        hash: &ApiKeyHash,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, partner_id, key_hash, created_at)
             SELECT $1, id, $2, $3 FROM partners WHERE code = $4",
        )
        .bind(key_id)
        .bind(hash.as_str())
        .bind(Timestamp::now().unix_millis())
        .bind(code.as_str())
        .execute(&mut *tx)
        .await;
        let count = match inserted {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Duplicate("api_keys")),
            other => other?.rows_affected(),
        };
        if count == 0 {
            return Err(StoreError::NotFound);
        }
        bump_config_version(&mut tx).await?;
        let key = key_by_id(&mut tx, code.as_str(), key_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(key)
    }

    async fn revoke_api_key(
        &self,
        code: &PartnerCode,
        key_id: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1
             WHERE id = $2 AND revoked_at IS NULL
               AND partner_id = (SELECT id FROM partners WHERE code = $3)",
        )
        .bind(Timestamp::now().unix_millis())
        .bind(key_id)
        .bind(code.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        bump_config_version(&mut tx).await?;
        let key = key_by_id(&mut tx, code.as_str(), key_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(key)
    }

    async fn list_api_keys(&self, code: &PartnerCode) -> Result<Vec<ApiKeyRecord>, StoreError> {
        sqlx::query(
            "SELECT k.id, p.code, k.created_at, k.revoked_at FROM api_keys k
             JOIN partners p ON p.id = k.partner_id WHERE p.code = $1 ORDER BY k.created_at, k.id",
        )
        .bind(code.as_str())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from_row)
        .collect()
    }

    async fn find_api_key(&self, hash: &ApiKeyHash) -> Result<Option<AuthRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            partner_columns!(),
            ", k.id FROM api_keys k JOIN partners p ON p.id = k.partner_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        ))
        .bind(hash.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok(AuthRecord {
                key_id: row.try_get(7)?,
                partner: partner_from_row(&row)?,
            })
        })
        .transpose()
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
