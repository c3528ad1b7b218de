//! A database of its own for one PostgreSQL run, created next to the one the caller named and
//! dropped afterwards, so runs neither see nor leave each other's rows.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub struct BenchDatabase {
    admin_url: String,
    /// `None` when the database could not be created and the caller's is used as it is.
    name: Option<String>,
    pub url: String,
}

impl BenchDatabase {
    pub async fn create(admin_url: &str, run_id: &str) -> anyhow::Result<Self> {
        let name = format!("dcbhub_bench_{run_id}");
        let mut conn = PgConnection::connect(admin_url).await?;
        let sql = format!("CREATE DATABASE {name}");
        // The name is ours (letters, digits, `_`): nothing to quote.
        let created = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
        conn.close().await?;
        if let Err(e) = created {
            eprintln!("note: cannot create a database for the run ({e}); using the given one");
            return Ok(Self {
                admin_url: admin_url.to_owned(),
                name: None,
                url: admin_url.to_owned(),
            });
        }
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name: Some(name),
            url: url.to_string(),
        })
    }

    /// Drops the run's database (its connections are ended first).
    pub async fn drop_database(self) -> anyhow::Result<()> {
        if let Some(name) = self.name {
            let mut conn = PgConnection::connect(&self.admin_url).await?;
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
            conn.close().await?;
        }
        Ok(())
    }
}
