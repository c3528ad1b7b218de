//! Turns the configuration into the core's [`Hub`]: connectors, routing, channels, policies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use dcbhub_connectors::{
    CspConnector, CspEntry, CspRegistry, HttpConnector, NrfRatingConnector, SandboxConnector,
    SandboxState,
};
use dcbhub_core::Hub;
use dcbhub_core::hub::{
    ChannelKind, CspSettings, LimitPolicy, NotificationPolicy, PinPolicy, TransactionPolicy,
};
use dcbhub_domain::{Currency, Money, Secret};
use dcbhub_notify::Channel;
use dcbhub_store::Store;

use crate::config::{ChannelName, Config, CspConfig, CspKind, LimitsConfig};

/// The sandbox CSP's id and the numbers it answers for (API.md §9).
pub const SANDBOX_ID: &str = "sandbox";
const SANDBOX_PREFIX: &str = "447700900";

/// Receipts waiting for this instance's outbox worker; beyond that they wait for their lease.
const HANDOFF_QUEUE: usize = 8192;

pub fn build_hub(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Hub>> {
    let mut entries = Vec::new();
    let mut settings = HashMap::new();
    let mut sandbox = None;
    if config.sandbox.enabled {
        let state = SandboxState::new();
        entries.push(CspEntry {
            id: SANDBOX_ID.into(),
            connector: Arc::new(SandboxConnector::with_state(state.clone())),
            prefixes: vec![SANDBOX_PREFIX.into()],
            accepts_email: true,
        });
        settings.insert(
            SANDBOX_ID.to_owned(),
            CspSettings {
                limits: Some(limits(&config.sandbox.limits).context("sandbox.limits")?),
                sms_channel: ChannelKind::Sandbox,
                email_channel: ChannelKind::Sandbox,
                smpp: None,
                smtp: None,
                charge_codes: HashMap::new(),
            },
        );
        sandbox = Some(state);
    }
    for csp in &config.csps {
        let (connector, csp_settings) =
            build_csp(csp, sandbox.as_ref()).with_context(|| format!("CSP {:?}", csp.id))?;
        entries.push(CspEntry {
            id: csp.id.clone(),
            connector,
            prefixes: csp.prefixes.clone(),
            accepts_email: csp.accepts_email,
        });
        settings.insert(csp.id.clone(), csp_settings);
    }
    let csps = CspRegistry::new(entries).context("invalid CSP routing")?;
    let t = &config.transactions;
    let n = &config.notifications;
    let p = &config.pin;
    Ok(Arc::new(Hub {
        store,
        csps,
        settings,
        sandbox,
        handoff: dcbhub_core::outbox::Handoff::new(HANDOFF_QUEUE),
        pin: PinPolicy {
            length: p.length,
            ttl_ms: i64::from(p.ttl_secs) * 1000,
            max_attempts: p.max_attempts,
            resend_cooldown_ms: i64::from(p.resend_cooldown_secs) * 1000,
            max_sends: p.max_sends,
            max_per_customer_per_hour: p.max_per_customer_per_hour,
            consent_window_ms: i64::from(p.consent_window_secs) * 1000,
            secret: Secret::new(pin_secret(config)?),
        },
        notifications: NotificationPolicy {
            max_per_recipient_per_hour: n.max_per_recipient_per_hour,
            max_attempts: n.max_attempts,
            retry_base_ms: i64::try_from(n.retry_base_ms).unwrap_or(i64::MAX),
            retry_max_ms: i64::try_from(n.retry_max_ms).unwrap_or(i64::MAX),
            lease_ms: i64::try_from(n.lease_ms).unwrap_or(60_000),
            poll_interval_ms: n.poll_interval_ms,
            batch: n.batch,
        },
        transactions: TransactionPolicy {
            max_major_units: i64::try_from(t.max_amount).unwrap_or(i64::MAX),
            processing_ms: i64::try_from(t.csp_timeout_ms).unwrap_or(5_000),
            reconcile_first_delay_ms: i64::try_from(t.reconcile_first_delay_ms).unwrap_or(2_000),
            reconcile_max_delay_ms: i64::try_from(t.reconcile_max_delay_ms).unwrap_or(300_000),
            reconcile_interval_ms: t.reconcile_interval_ms,
            reconcile_batch: t.reconcile_batch,
            limits_utc_offset_secs: t.limits_utc_offset_minutes.saturating_mul(60),
        },
    }))
}

fn build_csp(
    csp: &CspConfig,
    sandbox: Option<&SandboxState>,
) -> anyhow::Result<(Arc<dyn CspConnector>, CspSettings)> {
    let connector: Arc<dyn CspConnector> = match csp.kind {
        CspKind::Sandbox => Arc::new(SandboxConnector::with_state(
            sandbox.cloned().unwrap_or_default(),
        )),
        CspKind::Http => {
            let http = csp.http.clone().context("needs [csps.http]")?;
            Arc::new(HttpConnector::new(&csp.id, http).context("http connector")?)
        }
        CspKind::NrfRating => {
            let nrf = csp.nrf_rating.clone().context("needs [csps.nrf_rating]")?;
            Arc::new(NrfRatingConnector::new(&csp.id, nrf).context("nrf-rating connector")?)
        }
    };
    let smpp: Option<Arc<dyn Channel>> = match &csp.smpp {
        Some(c) => Some(Arc::new(
            dcbhub_notify::smpp::SmppChannel::new(c.clone()).context("smpp")?,
        )),
        None => None,
    };
    let smtp: Option<Arc<dyn Channel>> = match &csp.smtp {
        Some(c) => Some(Arc::new(
            dcbhub_notify::smtp::SmtpChannel::new(c.clone()).context("smtp")?,
        )),
        None => None,
    };
    let channel = |name: Option<ChannelName>, field: &str| -> anyhow::Result<ChannelKind> {
        let kind = match name {
            None | Some(ChannelName::Csp) => ChannelKind::Csp,
            Some(ChannelName::Smpp) => ChannelKind::Smpp,
            Some(ChannelName::Smtp) => ChannelKind::Smtp,
            Some(ChannelName::Sandbox) => ChannelKind::Sandbox,
        };
        match kind {
            ChannelKind::Smpp if smpp.is_none() => {
                bail!("{field} = \"smpp\" needs a [csps.smpp] section")
            }
            ChannelKind::Smtp if smtp.is_none() => {
                bail!("{field} = \"smtp\" needs a [csps.smtp] section")
            }
            ChannelKind::Sandbox if sandbox.is_none() => {
                bail!("{field} = \"sandbox\" needs the sandbox enabled")
            }
            ChannelKind::Csp | ChannelKind::Smpp | ChannelKind::Smtp | ChannelKind::Sandbox => {
                Ok(kind)
            }
        }
    };
    let settings = CspSettings {
        limits: csp
            .limits
            .as_ref()
            .map(limits)
            .transpose()
            .context("limits")?,
        sms_channel: channel(csp.sms_channel, "sms_channel")?,
        email_channel: channel(csp.email_channel, "email_channel")?,
        smpp,
        smtp,
        charge_codes: csp.charge_codes.clone(),
    };
    Ok((connector, settings))
}

fn limits(l: &LimitsConfig) -> anyhow::Result<LimitPolicy> {
    let currency = Currency::parse(&l.currency).map_err(|e| anyhow::anyhow!("{e}"))?;
    let amount = |s: &str, name: &str| {
        Money::parse(s, currency)
            .map(|m| m.amount())
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))
    };
    Ok(LimitPolicy {
        currency,
        per_transaction: amount(&l.per_transaction, "per_transaction")?,
        per_day: amount(&l.per_day, "per_day")?,
        per_month: amount(&l.per_month, "per_month")?,
    })
}

/// The configured PIN secret, or (embedded default) the one kept in the data folder, made on
/// the first start.
fn pin_secret(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = &config.pin.secret {
        return Ok(s.as_bytes().to_vec());
    }
    let dir = config
        .data_dir()
        .context("pin.secret is required with PostgreSQL")?;
    let path = dir.join("pin-secret");
    read_or_create_secret(&path)
}

fn read_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let bytes = hex::decode(existing.trim()).context("the PIN secret file is not hex")?;
        if bytes.len() >= 32 {
            return Ok(bytes);
        }
        bail!("the PIN secret in {} is too short", path.display());
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_private(path, &hex::encode(bytes))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes.to_vec())
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
