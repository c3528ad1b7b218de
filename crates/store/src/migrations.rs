//! Migrations are plain SQL files per backend, embedded in the binary and applied in order;
//! `schema_migrations` records which ran.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($backend:literal, $version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $backend, "/", $name, ".sql")),
        }
    };
}

pub const SQLITE: &[Migration] = &[
    migration!("sqlite", 1, "0001_partners"),
    migration!("sqlite", 2, "0002_notifications"),
    migration!("sqlite", 3, "0003_pins"),
    migration!("sqlite", 4, "0004_transactions"),
    migration!("sqlite", 5, "0005_settlement"),
    migration!("sqlite", 6, "0006_spending"),
];

pub const POSTGRES: &[Migration] = &[
    migration!("postgres", 1, "0001_partners"),
    migration!("postgres", 2, "0002_notifications"),
    migration!("postgres", 3, "0003_pins"),
    migration!("postgres", 4, "0004_transactions"),
    migration!("postgres", 5, "0005_settlement"),
    migration!("postgres", 6, "0006_spending"),
    migration!("postgres", 7, "0007_answered_charge"),
    migration!("postgres", 8, "0008_answered_charges"),
    migration!("postgres", 9, "0009_set_based_groups"),
    migration!("postgres", 10, "0010_group_takes_back_own_rows"),
];

pub fn latest(set: &[Migration]) -> i64 {
    set.last().map_or(0, |m| m.version)
}
