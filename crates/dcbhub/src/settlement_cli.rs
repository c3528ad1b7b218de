//! `dcbhub settlement …`: models, tax rates and statements from the command line, on the
//! same database as a running `serve`. JSON output is the admin API's documents.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use dcbhub::Config;
use dcbhub_core::settlement::{
    self, ExportFormat, ModelRequest, PeriodSpec, SettlementService, StatementDoc,
};
use dcbhub_domain::{PartnerCode, ProductCode};

#[derive(Subcommand)]
pub enum SettlementCommand {
    /// Settlement models: revenue share or flat cost, per partner or product code.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Tax rates of CSPs, taken out of tax-included transactions before the share.
    Tax {
        #[command(subcommand)]
        command: TaxCommand,
    },
    /// Compute (or recompute) the DRAFT statement of a partner and period.
    Run {
        #[arg(long)]
        partner: String,
        /// Calendar month, e.g. 2026-11 (in --tz).
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        month: Option<String>,
        /// Start, inclusive: 2026-11-01 (midnight in --tz) or RFC 3339.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End, exclusive.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// IANA time zone of the month or dates, e.g. Europe/London.
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[arg(long)]
        json: bool,
    },
    /// List statements.
    List {
        #[arg(long)]
        partner: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a statement with its lines and totals.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Make a DRAFT statement FINAL; it never changes afterwards.
    Finalise {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Export a statement as CSV or JSON.
    Export {
        id: i64,
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Add a model: --revenue-share 70.00, or --flat-cost 0.50 --currency GBP.
    Add {
        #[arg(long)]
        partner: String,
        /// Only for this product code (wins over the partner's default).
        #[arg(long)]
        product: Option<String>,
        /// The partner's percentage of net revenue after tax.
        #[arg(long, conflicts_with_all = ["flat_cost", "currency"], required_unless_present = "flat_cost")]
        revenue_share: Option<String>,
        /// A fixed amount per successful charge, in --currency.
        #[arg(long, requires = "currency")]
        flat_cost: Option<String>,
        #[arg(long)]
        currency: Option<String>,
        /// First day (inclusive): 2026-01-01 (midnight in --tz) or RFC 3339.
        #[arg(long)]
        from: String,
        /// End (exclusive); open-ended when omitted.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[arg(long)]
        json: bool,
    },
    /// List models.
    List {
        #[arg(long)]
        partner: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TaxCommand {
    /// Set a CSP's tax rate (percent) from a date on.
    Set {
        #[arg(long)]
        csp: String,
        /// Percent, e.g. 20.00.
        #[arg(long)]
        rate: String,
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "UTC")]
        tz: String,
    },
    /// List tax rates.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn partner_code(raw: &str) -> anyhow::Result<PartnerCode> {
    PartnerCode::parse(raw).map_err(|e| anyhow::anyhow!("--partner: {}", e.reason))
}

fn json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn run(command: SettlementCommand, config: &Config) -> anyhow::Result<()> {
    let store = dcbhub_store::open(&config.database_url, true).await?;
    let service = SettlementService::new(Arc::clone(&store));
    match command {
        SettlementCommand::Model { command } => model(command, &service).await,
        SettlementCommand::Tax { command } => tax(command, &service).await,
        SettlementCommand::Run {
            partner,
            month,
            from,
            to,
            tz,
            json: as_json,
        } => {
            let period = PeriodSpec {
                month: month.as_deref(),
                from: from.as_deref(),
                to: to.as_deref(),
                tz: Some(&tz),
            }
            .resolve()?;
            let st = service
                .run(&partner_code(&partner)?, period)
                .await
                .context("cannot run the statement")?;
            print_statement(&settlement::statement_doc(&st)?, as_json)
        }
        SettlementCommand::List {
            partner,
            json: as_json,
        } => {
            let partner = partner.as_deref().map(partner_code).transpose()?;
            let list = service.list(partner.as_ref()).await?;
            let docs: Vec<_> = list.iter().map(settlement::summary_doc).collect();
            if as_json {
                return json(&docs);
            }
            println!(
                "{:>6}  {:<16} {:<24} {:<24} {:<6} REVISION",
                "ID", "PARTNER", "FROM", "TO", "STATUS"
            );
            for d in docs {
                println!(
                    "{:>6}  {:<16} {:<24} {:<24} {:<6} {}",
                    d.id, d.partner, d.period_from, d.period_to, d.status, d.revision
                );
            }
            Ok(())
        }
        SettlementCommand::Show { id, json: as_json } => {
            let st = service.statement(id).await?;
            print_statement(&settlement::statement_doc(&st)?, as_json)
        }
        SettlementCommand::Finalise { id, json: as_json } => {
            let st = service
                .finalise(id)
                .await
                .with_context(|| format!("cannot finalise statement {id}"))?;
            let doc = settlement::statement_doc(&st)?;
            if as_json {
                return json(&doc);
            }
            println!(
                "statement {id} is FINAL (finalised {})",
                doc.summary.finalised_at.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        SettlementCommand::Export { id, format, output } => {
            let format = ExportFormat::parse(&format)?;
            let st = service.statement(id).await?;
            let text = settlement::export(&st, format)?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}

async fn model(command: ModelCommand, service: &SettlementService) -> anyhow::Result<()> {
    match command {
        ModelCommand::Add {
            partner,
            product,
            revenue_share,
            flat_cost,
            currency,
            from,
            to,
            tz,
            json: as_json,
        } => {
            let tz = settlement::time_zone(&tz)?;
            let request = ModelRequest {
                partner: partner_code(&partner)?,
                product: product
                    .as_deref()
                    .map(ProductCode::parse)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--product: {}", e.reason))?,
                terms: settlement::parse_terms(
                    revenue_share.as_deref(),
                    flat_cost.as_deref(),
                    currency.as_deref(),
                )?,
                valid_from: settlement::parse_instant("from", &from, &tz)?,
                valid_to: to
                    .as_deref()
                    .map(|t| settlement::parse_instant("to", t, &tz))
                    .transpose()?,
            };
            let added = service
                .add_model(request)
                .await
                .context("cannot add the model")?;
            let doc = settlement::model_doc(&added.model)?;
            if as_json {
                return json(&doc);
            }
            println!("added model {}: {}", doc.id, describe_model(&doc));
            if let Some(old) = &added.superseded {
                let old = settlement::model_doc(old)?;
                println!("model {} now ends at {}", old.id, doc.valid_from);
            }
            Ok(())
        }
        ModelCommand::List {
            partner,
            json: as_json,
        } => {
            let partner = partner.as_deref().map(partner_code).transpose()?;
            let docs = service
                .models(partner.as_ref())
                .await?
                .iter()
                .map(settlement::model_doc)
                .collect::<Result<Vec<_>, _>>()?;
            if as_json {
                return json(&docs);
            }
            for d in docs {
                println!("{:>6}  {}", d.id, describe_model(&d));
            }
            Ok(())
        }
    }
}

fn describe_model(d: &settlement::ModelDoc) -> String {
    let terms = match (&d.terms.partner_share, &d.terms.amount, &d.terms.currency) {
        (Some(share), _, _) => format!("revenue share {share} %"),
        (None, Some(amount), Some(currency)) => format!("flat cost {amount} {currency} per charge"),
        _ => d.terms.kind.to_owned(),
    };
    format!(
        "{} {} {terms}, from {} to {}",
        d.partner,
        d.product_code.as_deref().unwrap_or("(default)"),
        d.valid_from,
        d.valid_to.as_deref().unwrap_or("(open)")
    )
}

async fn tax(command: TaxCommand, service: &SettlementService) -> anyhow::Result<()> {
    match command {
        TaxCommand::Set {
            csp,
            rate,
            from,
            tz,
        } => {
            let tz = settlement::time_zone(&tz)?;
            let from = settlement::parse_instant("from", &from, &tz)?;
            let r = service
                .set_tax_rate(&csp, &rate, from)
                .await
                .context("cannot set the tax rate")?;
            println!(
                "tax rate of {} is {} % from {}",
                r.csp_id,
                settlement::format_percent(r.rate_bp),
                r.valid_from
            );
            Ok(())
        }
        TaxCommand::List { json: as_json } => {
            let rates = service.tax_rates().await?;
            if as_json {
                let rows: Vec<_> = rates
                    .iter()
                    .map(|r| {
                        serde_json::json!({"cspId": r.csp_id, "rate": settlement::format_percent(r.rate_bp),
                            "validFrom": r.valid_from.to_rfc3339(), "createdAt": r.created_at.to_rfc3339()})
                    })
                    .collect();
                return json(&rows);
            }
            for r in rates {
                println!(
                    "{:<16} {:>8} %  from {}",
                    r.csp_id,
                    settlement::format_percent(r.rate_bp),
                    r.valid_from
                );
            }
            Ok(())
        }
    }
}

fn print_statement(doc: &StatementDoc, as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return json(doc);
    }
    let s = &doc.summary;
    println!(
        "statement {}  {}  [{} .. {})  {} revision {}  computed {}",
        s.id, s.partner, s.period_from, s.period_to, s.status, s.revision, s.computed_at
    );
    println!(
        "{:<10} {:<3} {:<15} {:>5} {:>6} {:>6} {:>5} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}  ISSUE",
        "KIND",
        "CUR",
        "PRODUCT",
        "MODEL",
        "TAX%",
        "CHG",
        "REF",
        "GROSS",
        "REFUNDED",
        "NET",
        "TAX",
        "CSP SHARE",
        "PAYOUT"
    );
    for l in &doc.lines {
        println!(
            "{:<10} {:<3} {:<15} {:>5} {:>6} {:>6} {:>5} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}  {}",
            l.kind,
            l.currency,
            l.product_code.as_deref().unwrap_or("-"),
            l.model_id.map_or("-".to_owned(), |m| m.to_string()),
            l.tax_rate,
            l.charges,
            l.refunds,
            l.gross,
            l.refunded,
            l.net,
            l.tax,
            l.csp_share,
            l.partner_payout,
            l.issue.unwrap_or("")
        );
    }
    for t in &doc.totals {
        println!(
            "{:<10} {:<3} {:<15} {:>5} {:>6} {:>6} {:>5} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
            "TOTAL",
            t.currency,
            "",
            "",
            "",
            t.charges,
            t.refunds,
            t.gross,
            t.refunded,
            t.net,
            t.tax,
            t.csp_share,
            t.partner_payout
        );
    }
    Ok(())
}
