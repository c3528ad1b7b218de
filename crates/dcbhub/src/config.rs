//! Configuration: compiled-in defaults, then an optional TOML file, then `DCBHUB_*`
//! environment variables (`__` separates nested keys, e.g. `DCBHUB_SANDBOX__ENABLED`).
//! Unknown keys in the file and bad values anywhere stop the start with a message naming
//! them; an unknown `DCBHUB_*` variable is logged as a warning naming it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "DCBHUB_";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// Bearer token of the admin API; without one the admin API is off.
    pub admin_token: Option<String>,
    /// `json` (default) or `text`.
    pub log_format: LogFormat,
    pub sandbox: SandboxConfig,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The built-in simulated CSP (API.md §9); on by default when no CSP is configured.
    pub enabled: bool,
    /// Create a `DEMO` partner at the first start and print its key once.
    pub demo_partner: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://./dcbhub-data/dcbhub.db".into(),
            admin_token: None,
            log_format: LogFormat::Json,
            sandbox: SandboxConfig {
                enabled: true,
                demo_partner: true,
            },
        }
    }
}

/// Top-level keys, as `DCBHUB_<KEY>` names; nested sections are matched by their prefix.
const KNOWN_KEYS: &[&str] = &["LISTEN", "DATABASE_URL", "ADMIN_TOKEN", "LOG_FORMAT"];
const KNOWN_SECTIONS: &[&str] = &["SANDBOX"];

fn known_env(name: &str) -> bool {
    let Some(key) = name.strip_prefix(ENV_PREFIX) else {
        return true;
    };
    KNOWN_KEYS.contains(&key)
        || KNOWN_SECTIONS.iter().any(|s| {
            key.strip_prefix(s)
                .is_some_and(|rest| rest.starts_with("__"))
        })
        || key == "CONFIG"
}

/// `DCBHUB_*` variables that name no setting; the caller logs them once logging is up.
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(ENV_PREFIX) && !known_env(k))
        .collect()
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(format!(
                    "configuration file {} does not exist",
                    path.display()
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed(ENV_PREFIX)
                .filter(|k| {
                    known_env(&format!("{ENV_PREFIX}{}", k.as_str().to_ascii_uppercase()))
                        && k != "config"
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| format!("invalid configuration: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.database_url.starts_with("sqlite://")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(
                "invalid configuration: database_url must start with sqlite:// or postgres://"
                    .into(),
            );
        }
        if let Some(token) = &self.admin_token
            && token.len() < 16
        {
            return Err("invalid configuration: admin_token must be at least 16 characters".into());
        }
        Ok(())
    }

    /// The SQLite data folder, when the store is SQLite.
    pub fn data_dir(&self) -> Option<PathBuf> {
        let path = Path::new(self.database_url.strip_prefix("sqlite://")?);
        Some(path.parent().map(Path::to_path_buf).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_file_and_env_layer() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert!(c.sandbox.enabled);
            jail.create_file(
                "dcbhub.toml",
                "listen = \"127.0.0.1:9000\"\n[sandbox]\ndemo_partner = false\n",
            )?;
            jail.set_env("DCBHUB_DATABASE_URL", "postgres://x@localhost/db");
            let c = Config::load(Some(Path::new("dcbhub.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
            assert!(!c.sandbox.demo_partner);
            assert_eq!(c.database_url, "postgres://x@localhost/db");
            jail.set_env("DCBHUB_LISTEN", "127.0.0.1:9100");
            let c = Config::load(Some(Path::new("dcbhub.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
            Ok(())
        });
    }

    #[test]
    fn bad_values_and_unknown_keys_are_named() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "listn = \"127.0.0.1:9000\"\n")?;
            let e = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(e.contains("listn"), "{e}");
            jail.create_file("ok.toml", "")?;
            jail.set_env("DCBHUB_LISTEN", "not-an-address");
            let e = Config::load(Some(Path::new("ok.toml"))).unwrap_err();
            assert!(e.to_lowercase().contains("listen"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_vars_are_reported() {
        Jail::expect_with(|jail| {
            jail.set_env("DCBHUB_LISTN", "x");
            jail.set_env("DCBHUB_SANDBOX__ENABLED", "true");
            let unknown = unknown_env_vars();
            assert!(unknown.contains(&"DCBHUB_LISTN".to_owned()));
            assert!(!unknown.iter().any(|k| k == "DCBHUB_SANDBOX__ENABLED"));
            Ok(())
        });
    }
}
