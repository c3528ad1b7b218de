mod settlement_cli;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcbhub::{Application, Config, telemetry};
use dcbhub_core::PartnerService;
use dcbhub_core::partners::NewPartnerRequest;
use dcbhub_domain::{ConsentPolicy, PartnerCode, PartnerStatus};

// A charge allocates on a request thread and frees on the writer (and back): glibc's malloc
// was a fifth of the request threads' time; with mimalloc the hub spends ~10% less CPU per
// charge (docs/PERFORMANCE.md, fifth round). Built without transparent huge pages
// (`no_thp`): with them, memory it purged came back as a fresh 2 MiB page zeroed whole,
// ~8% of the request threads' time (eleventh round).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dcbhub",
    version,
    about = "Direct carrier billing hub (MarketONE OTT API v1)"
)]
struct Cli {
    /// TOML configuration file; DCBHUB_* environment variables override it.
    #[arg(long, global = true, env = "DCBHUB_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API, the outbox worker and the reconciler.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage partners (OTT organisations) and their API keys.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Settlement: models, tax rates, statements (run, list, show, finalise, export).
    Settlement {
        #[command(subcommand)]
        command: settlement_cli::SettlementCommand,
    },
    /// Print the OpenAPI document of the OTT API.
    Openapi,
    /// Run the sandbox CSP as an HTTP server speaking the CSP-side API (docs/csp-api.md).
    CspSim {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
        /// The key callers must send as X-API-KEY.
        #[arg(long, env = "DCBHUB_CSP_SIM_API_KEY", default_value = "csp-sim-key")]
        api_key: String,
        /// Delay of the late charge answer of +447700900007, in milliseconds.
        #[arg(long, default_value_t = 6000)]
        late_answer_ms: u64,
    },
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Create a partner and its first API key (shown once).
    Create {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        /// `pin` (default) or `none` (charges without a PIN, e.g. renewals).
        #[arg(long, default_value = "pin")]
        consent: String,
        /// Do not send receipts after charges.
        #[arg(long)]
        no_receipts: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List partners.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Suspend a partner: its keys answer 403 within seconds on every instance.
    Suspend { code: String },
    /// Resume a suspended partner.
    Resume { code: String },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issue a new key (shown once).
    Create {
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key.
    Revoke { code: String, key_id: String },
    /// List a partner's keys.
    List {
        code: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    for name in dcbhub::config::unknown_env_vars() {
        tracing::warn!(variable = %name, "unknown DCBHUB_* environment variable ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            dcbhub_store::open(&config.database_url, true).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Partner { command } => partner(command, &config).await,
        Command::Settlement { command } => settlement_cli::run(command, &config).await,
        Command::Openapi => {
            println!("{}", dcbhub_api::openapi_json());
            Ok(())
        }
        Command::CspSim {
            listen,
            api_key,
            late_answer_ms,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let mut sim = dcbhub_csp_sim::SimConfig::new(api_key);
            sim.late_answer_ms = late_answer_ms;
            println!(
                "dcbhub csp-sim listening on http://{}",
                listener.local_addr()?
            );
            dcbhub_csp_sim::serve(listener, sim, dcbhub::shutdown_signal()).await?;
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    let addr = app.local_addr()?;
    if let Some(key) = &app.demo_key {
        println!("Created the DEMO partner. Its API key, shown this once:\n\n    {key}\n");
    }
    println!("dcbhub listening on http://{addr} (docs at http://{addr}/docs)");
    tracing::info!(%addr, backend = app.store.backend(), "listening");
    app.run_until(dcbhub::shutdown_signal()).await?;
    Ok(())
}

async fn partner(command: PartnerCommand, config: &Config) -> anyhow::Result<()> {
    let store = dcbhub_store::open(&config.database_url, true).await?;
    let partners = PartnerService::new(Arc::clone(&store), None);
    let code = |c: &str| PartnerCode::parse(c).map_err(|e| anyhow::anyhow!("{e}"));
    match command {
        PartnerCommand::Create {
            code: c,
            name,
            consent,
            no_receipts,
            json,
        } => {
            let consent = ConsentPolicy::parse(&consent).map_err(|e| anyhow::anyhow!("{e}"))?;
            let created = partners
                .create(NewPartnerRequest {
                    code: code(&c)?,
                    name,
                    consent,
                    receipts_enabled: !no_receipts,
                })
                .await
                .context("cannot create the partner")?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"code": created.partner.code.as_str(), "apiKey": created.key.expose(), "keyId": created.key_id})
                );
            } else {
                println!(
                    "Created partner {} ({}). API key, shown this once:\n\n    {}\n",
                    created.partner.code,
                    created.partner.name,
                    created.key.expose()
                );
            }
        }
        PartnerCommand::List { json } => {
            let list = partners.list().await?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|p| {
                        serde_json::json!({"code": p.code.as_str(), "name": p.name, "status": p.status.as_str(),
                            "consent": p.consent.as_str(), "receiptsEnabled": p.receipts_enabled,
                            "createdAt": p.created_at.to_rfc3339()})
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:<16} {:<10} {:<8} NAME", "CODE", "STATUS", "CONSENT");
                for p in list {
                    println!(
                        "{:<16} {:<10} {:<8} {}",
                        p.code,
                        p.status.as_str(),
                        p.consent.as_str(),
                        p.name
                    );
                }
            }
        }
        PartnerCommand::Suspend { code: c } => {
            partners
                .set_status(&code(&c)?, PartnerStatus::Suspended)
                .await?;
            println!("suspended {c}");
        }
        PartnerCommand::Resume { code: c } => {
            partners
                .set_status(&code(&c)?, PartnerStatus::Active)
                .await?;
            println!("resumed {c}");
        }
        PartnerCommand::Key { command } => match command {
            KeyCommand::Create { code: c, json } => {
                let issued = partners.create_key(&code(&c)?).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"code": c, "keyId": issued.record.id, "apiKey": issued.key.expose()})
                    );
                } else {
                    println!(
                        "Key {} for {c}, shown this once:\n\n    {}\n",
                        issued.record.id,
                        issued.key.expose()
                    );
                }
            }
            KeyCommand::Revoke { code: c, key_id } => {
                partners.revoke_key(&code(&c)?, &key_id).await?;
                println!("revoked {key_id}");
            }
            KeyCommand::List { code: c, json } => {
                let keys = partners.list_keys(&code(&c)?).await?;
                if json {
                    let rows: Vec<_> = keys
                        .iter()
                        .map(|k| serde_json::json!({"keyId": k.id, "createdAt": k.created_at.to_rfc3339(),
                            "revokedAt": k.revoked_at.map(|t| t.to_rfc3339())}))
                        .collect();
                    println!("{}", serde_json::Value::Array(rows));
                } else {
                    for k in keys {
                        let state = k
                            .revoked_at
                            .map_or("active".to_owned(), |t| format!("revoked {t}"));
                        println!("{}  created {}  {state}", k.id, k.created_at);
                    }
                }
            }
        },
    }
    Ok(())
}
