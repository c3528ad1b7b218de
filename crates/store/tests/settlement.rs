//! Settlement on every store backend, with hand-computed fixtures: each test below runs on
//! SQLite and on PostgreSQL (skipped, and said so, when no PostgreSQL answers). Fixture
//! transactions are written with raw SQL so that their `created_at` is under control.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dcbhub_domain::{ApiKey, ConsentPolicy, PartnerCode, Timestamp};
use dcbhub_store::{
    FINALISE_GRACE_MS, FinaliseOutcome, LineIssue, ModelAddOutcome, ModelTerms, NewPartner,
    NewSettlementModel, NewTaxRate, Period, RunOutcome, Statement, StatementStatus, Store,
    TaxRateOutcome,
};

macro_rules! settlement_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (_dir, url) = dcbhub_store::testing::sqlite_url().unwrap();
                    let store = dcbhub_store::open(&url, true).await.unwrap();
                    let raw = super::Raw::sqlite(url.strip_prefix("sqlite://").unwrap().into());
                    super::$name(super::Fx { store, raw }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = dcbhub_store::testing::postgres_url(stringify!($name)).await else { return };
                    let store = dcbhub_store::open(&url, true).await.unwrap();
                    let raw = super::Raw::postgres(&url).await;
                    super::$name(super::Fx { store, raw }).await;
                }
            )*
        }
    };
}

settlement_tests!(
    revenue_share_with_tax_included_and_not,
    jpy_and_kwd_with_flat_costs_and_product_rules,
    rounding_is_half_even_once_per_line,
    model_changing_mid_period_splits_lines,
    refund_after_a_final_period_is_an_adjustment,
    running_twice_gives_the_same_statement,
    final_statements_refuse_direct_sql,
    finalising_needs_an_ended_settled_priced_fresh_period,
);

// ---------------------------------------------------------------------------------------
// Fixture support.

/// Direct access to the database behind the store, for fixtures and tamper attempts.
enum Raw {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(sqlx::PgPool),
}

impl Raw {
    fn sqlite(path: PathBuf) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        Self::Sqlite(Mutex::new(conn))
    }

    async fn postgres(url: &str) -> Self {
        Self::Postgres(sqlx::PgPool::connect(url).await.unwrap())
    }

    /// Runs one statement; the database's error text on failure.
    async fn exec(&self, sql: &str) -> Result<u64, String> {
        match self {
            Self::Sqlite(c) => c
                .lock()
                .unwrap()
                .execute(sql, [])
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
            Self::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
                .map_err(|e| e.to_string()),
        }
    }

    async fn insert(&self, t: &Tx) {
        const COLUMNS: &str = "id, partner_id, ext_transaction_id, fingerprint, type, status, customer, customer_kind, \
             csp_id, account_key, amount_minor, currency, description, product_code, tax_included, original_id, \
             processing_until, next_check_at, created_at, updated_at";
        match self {
            Self::Sqlite(c) => {
                c.lock()
                    .unwrap()
                    .execute(
                        &format!(
                            "INSERT INTO transactions ({COLUMNS}) VALUES (?1, ?2, ?1, 'fp', ?3, ?4, '+447700900123', \
                             'msisdn', ?5, 'acct', ?6, ?7, 'fixture', ?8, ?9, ?10, 0, 0, ?11, ?11)"
                        ),
                        rusqlite::params![
                            t.id,
                            t.partner_id,
                            t.tx_type,
                            t.status,
                            t.csp,
                            t.amount,
                            t.currency,
                            t.product,
                            i64::from(t.tax_included),
                            t.original,
                            t.at.unix_millis()
                        ],
                    )
                    .unwrap();
            }
            Self::Postgres(pool) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO transactions ({COLUMNS}) VALUES ($1, $2, $1, 'fp', $3, $4, '+447700900123', \
                     'msisdn', $5, 'acct', $6, $7, 'fixture', $8, $9, $10, 0, 0, $11, $11)"
                )))
                .bind(&t.id)
                .bind(t.partner_id)
                .bind(t.tx_type)
                .bind(t.status)
                .bind(&t.csp)
                .bind(t.amount)
                .bind(&t.currency)
                .bind(&t.product)
                .bind(t.tax_included)
                .bind(&t.original)
                .bind(t.at.unix_millis())
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }
}

/// A fixture transaction, SUCCESS unless said otherwise.
#[derive(Clone)]
struct Tx {
    id: String,
    partner_id: i64,
    tx_type: &'static str,
    status: &'static str,
    amount: i64,
    currency: String,
    product: Option<String>,
    tax_included: bool,
    csp: String,
    original: Option<String>,
    at: Timestamp,
}

impl Tx {
    fn charge(id: &str, partner_id: i64, amount: i64, currency: &str, at: &str) -> Self {
        Self {
            id: id.into(),
            partner_id,
            tx_type: "CHARGE",
            status: "SUCCESS",
            amount,
            currency: currency.into(),
            product: None,
            tax_included: false,
            csp: "uk".into(),
            original: None,
            at: t(at),
        }
    }

    /// A refund of `of`, in its currency, product, tax and CSP.
    fn refund(id: &str, of: &Tx, amount: i64, at: &str) -> Self {
        Self {
            id: id.into(),
            tx_type: "REFUND",
            amount,
            original: Some(of.id.clone()),
            at: t(at),
            ..of.clone()
        }
    }

    fn product(mut self, p: &str) -> Self {
        self.product = Some(p.into());
        self
    }

    fn taxed(mut self) -> Self {
        self.tax_included = true;
        self
    }

    fn csp(mut self, c: &str) -> Self {
        self.csp = c.into();
        self
    }

    fn status(mut self, s: &'static str) -> Self {
        self.status = s;
        self
    }
}

struct Fx {
    store: Arc<dyn Store>,
    raw: Raw,
}

impl Fx {
    async fn partner(&self, code: &str) -> i64 {
        let key = ApiKey::generate();
        self.store
            .create_partner(NewPartner {
                code: PartnerCode::parse(code).unwrap(),
                name: format!("{code} Ltd"),
                consent: ConsentPolicy::Pin,
                receipts_enabled: false,
                first_key_id: format!("key_{}", &key.hash().as_str()[..16]),
                first_key_hash: key.hash(),
            })
            .await
            .unwrap()
            .id
    }

    async fn add_model(
        &self,
        partner_id: i64,
        product: Option<&str>,
        terms: ModelTerms,
        from: &str,
        to: Option<&str>,
    ) -> ModelAddOutcome {
        self.store
            .add_settlement_model(NewSettlementModel {
                partner_id,
                product_code: product.map(Into::into),
                terms,
                valid_from: t(from),
                valid_to: to.map(t),
            })
            .await
            .unwrap()
    }

    /// Adds a model that must be accepted; its id.
    async fn model(
        &self,
        partner_id: i64,
        product: Option<&str>,
        terms: ModelTerms,
        from: &str,
        to: Option<&str>,
    ) -> i64 {
        match self.add_model(partner_id, product, terms, from, to).await {
            ModelAddOutcome::Added { model, .. } => model.id,
            other => panic!("model refused: {other:?}"),
        }
    }

    async fn tax(&self, csp: &str, rate_bp: u32, from: &str) {
        let set = self
            .store
            .set_tax_rate(NewTaxRate {
                csp_id: csp.into(),
                rate_bp,
                valid_from: t(from),
            })
            .await
            .unwrap();
        assert!(matches!(set, TaxRateOutcome::Set(_)), "{set:?}");
    }

    async fn txs(&self, txs: &[&Tx]) {
        for tx in txs {
            self.raw.insert(tx).await;
        }
    }

    async fn run(&self, partner_id: i64, period: Period) -> Statement {
        match self
            .store
            .run_statement(partner_id, period, Timestamp::now())
            .await
            .unwrap()
        {
            RunOutcome::Computed(st) => {
                check_arithmetic(&st);
                st
            }
            other => panic!("run refused: {other:?}"),
        }
    }

    async fn finalise(&self, id: i64) -> FinaliseOutcome {
        self.store
            .finalise_statement(id, Timestamp::now())
            .await
            .unwrap()
    }
}

fn t(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap_or_else(|| panic!("bad time {rfc3339}"))
}

fn month(from: &str, to: &str) -> Period {
    Period::new(t(from), t(to)).unwrap()
}

fn january() -> Period {
    month("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z")
}

fn february() -> Period {
    month("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
}

const SINCE_2024: &str = "2024-01-01T00:00:00Z";

fn share(bp: u32) -> ModelTerms {
    ModelTerms::RevenueShare {
        partner_share_bp: bp,
    }
}

fn flat(amount_minor: i64, currency: &str) -> ModelTerms {
    ModelTerms::FlatCost {
        amount_minor,
        currency: currency.into(),
    }
}

/// A line as `(kind, currency, product, model id, tax rate, [charges, refunds, gross,
/// refunded, net, tax, CSP share, payout])`.
type L = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<i64>,
    u32,
    [i64; 8],
);

/// A line as compared: the owned form of [`L`].
type Line = (String, String, Option<String>, Option<i64>, u32, [i64; 8]);

fn lines(st: &Statement) -> Vec<Line> {
    st.lines
        .iter()
        .map(|l| {
            (
                l.kind.as_str().to_owned(),
                l.currency.clone(),
                l.product_code.clone(),
                l.model_id,
                l.tax_rate_bp,
                [
                    l.charges,
                    l.refunds,
                    l.gross_minor,
                    l.refunded_minor,
                    l.net_minor,
                    l.tax_minor,
                    l.csp_share_minor,
                    l.payout_minor,
                ],
            )
        })
        .collect()
}

fn expect(expected: &[L]) -> Vec<Line> {
    expected
        .iter()
        .map(|(k, c, p, m, r, v)| {
            (
                (*k).to_owned(),
                (*c).to_owned(),
                p.map(str::to_owned),
                *m,
                *r,
                *v,
            )
        })
        .collect()
}

/// Totals per currency as `(currency, [charges, refunds, gross, refunded, net, tax, CSP
/// share, payout])`.
fn totals(st: &Statement) -> Vec<(String, [i64; 8])> {
    st.totals()
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.currency,
                [
                    t.charges,
                    t.refunds,
                    t.gross_minor,
                    t.refunded_minor,
                    t.net_minor,
                    t.tax_minor,
                    t.csp_share_minor,
                    t.payout_minor,
                ],
            )
        })
        .collect()
}

/// The identities every line and total must satisfy.
fn check_arithmetic(st: &Statement) {
    for l in &st.lines {
        assert_eq!(l.net_minor, l.gross_minor - l.refunded_minor, "{l:?}");
        assert_eq!(
            l.net_minor,
            l.tax_minor + l.csp_share_minor + l.payout_minor,
            "{l:?}"
        );
    }
    for total in st.totals().unwrap() {
        let of = |f: fn(&dcbhub_store::StatementLine) -> i64| -> i64 {
            st.lines
                .iter()
                .filter(|l| l.currency == total.currency)
                .map(f)
                .sum()
        };
        assert_eq!(total.payout_minor, of(|l| l.payout_minor));
        assert_eq!(total.csp_share_minor, of(|l| l.csp_share_minor));
        assert_eq!(total.tax_minor, of(|l| l.tax_minor));
        assert_eq!(total.net_minor, of(|l| l.net_minor));
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

async fn revenue_share_with_tax_included_and_not(fx: Fx) {
    let p = fx.partner("NFLX").await;
    let m = fx.model(p, None, share(7000), SINCE_2024, None).await;
    fx.tax("uk", 2000, SINCE_2024).await;
    let c2 = Tx::charge("c2", p, 499, "GBP", "2025-01-10T12:00:00Z").taxed();
    fx.txs(&[
        &Tx::charge("c1", p, 1000, "GBP", "2025-01-05T09:00:00Z").taxed(),
        &c2,
        &Tx::refund("r1", &c2, 499, "2025-01-12T08:00:00Z"),
        &Tx::charge("c3", p, 300, "GBP", "2025-01-15T10:00:00Z"),
        // Not counted: failed, pending-free but outside the half-open period.
        &Tx::charge("f1", p, 999, "GBP", "2025-01-16T10:00:00Z").status("FAILED"),
        &Tx::charge("before", p, 111, "GBP", "2024-12-31T23:59:59.999Z").taxed(),
        &Tx::charge("after", p, 222, "GBP", "2025-02-01T00:00:00Z").taxed(),
    ])
    .await;
    // Another partner's transactions never appear.
    let other = fx.partner("SPOT").await;
    fx.txs(&[&Tx::charge(
        "o1",
        other,
        5000,
        "GBP",
        "2025-01-05T09:00:00Z",
    )])
    .await;

    let st = fx.run(p, january()).await;
    assert_eq!(st.header.status, StatementStatus::Draft);
    assert_eq!(st.header.partner_code.as_str(), "NFLX");
    // Taxed: net 10.00 incl. 20 % -> 8.33 ex tax (tax 1.67); payout 10.00*0.70/1.20 = 5.833
    // -> 5.83; CSP 8.33 - 5.83 = 2.50. Untaxed: 3.00 -> payout 2.10, CSP 0.90.
    assert_eq!(
        lines(&st),
        expect(&[
            (
                "charges",
                "GBP",
                None,
                Some(m),
                0,
                [1, 0, 300, 0, 300, 0, 90, 210]
            ),
            (
                "charges",
                "GBP",
                None,
                Some(m),
                2000,
                [2, 1, 1499, 499, 1000, 167, 250, 583]
            ),
        ])
    );
    assert_eq!(
        totals(&st),
        [("GBP".to_owned(), [3, 1, 1799, 499, 1300, 167, 340, 793])]
    );
    assert_eq!(st.issues(), 0);

    let rates = fx.store.list_tax_rates().await.unwrap();
    assert_eq!(rates.len(), 1);
    assert_eq!((rates[0].csp_id.as_str(), rates[0].rate_bp), ("uk", 2000));
}

async fn jpy_and_kwd_with_flat_costs_and_product_rules(fx: Fx) {
    let p = fx.partner("GAMES").await;
    let default = fx.model(p, None, share(6000), SINCE_2024, None).await;
    let game = fx
        .model(p, Some("GAME"), flat(250, "KWD"), SINCE_2024, None)
        .await;
    let anime = fx
        .model(p, Some("ANIME"), flat(100, "JPY"), SINCE_2024, None)
        .await;
    fx.tax("jp", 1000, SINCE_2024).await;
    let g1 = Tx::charge("g1", p, 1500, "KWD", "2025-01-03T00:00:00Z")
        .product("GAME")
        .csp("kw");
    fx.txs(&[
        &Tx::charge("a1", p, 500, "JPY", "2025-01-02T00:00:00Z")
            .product("ANIME")
            .csp("jp"),
        &Tx::charge("a2", p, 500, "JPY", "2025-01-02T01:00:00Z")
            .product("ANIME")
            .csp("jp"),
        &Tx::charge("m1", p, 333, "JPY", "2025-01-04T00:00:00Z")
            .product("MUSIC")
            .csp("jp")
            .taxed(),
        &g1,
        &Tx::charge("g2", p, 1500, "KWD", "2025-01-03T01:00:00Z")
            .product("GAME")
            .csp("kw"),
        &Tx::charge("g3", p, 1500, "KWD", "2025-01-03T02:00:00Z")
            .product("GAME")
            .csp("kw"),
        &Tx::refund("gr", &g1, 1500, "2025-01-20T00:00:00Z"),
        // No tax rate for `kw`: tax included means nothing is taken out.
        &Tx::charge("o1", p, 1234, "KWD", "2025-01-05T00:00:00Z")
            .product("OTHER")
            .csp("kw")
            .taxed(),
    ])
    .await;
    let st = fx.run(p, january()).await;
    // ANIME: flat 100 JPY x 2. GAME: flat 0.250 KWD x 3 charges (the refund does not take a
    // flat cost back). MUSIC falls back to the default 60 %: 333 JPY incl. 10 % -> 302.7 ->
    // 303 ex tax, tax 30, payout 333*0.6/1.1 = 181.6 -> 182, CSP 121. OTHER: 1.234 KWD at
    // 60 % = 0.7404 -> 0.740, CSP 0.494.
    assert_eq!(
        lines(&st),
        expect(&[
            (
                "charges",
                "JPY",
                Some("ANIME"),
                Some(anime),
                0,
                [2, 0, 1000, 0, 1000, 0, 800, 200]
            ),
            (
                "charges",
                "JPY",
                Some("MUSIC"),
                Some(default),
                1000,
                [1, 0, 333, 0, 333, 30, 121, 182]
            ),
            (
                "charges",
                "KWD",
                Some("GAME"),
                Some(game),
                0,
                [3, 1, 4500, 1500, 3000, 0, 2250, 750]
            ),
            (
                "charges",
                "KWD",
                Some("OTHER"),
                Some(default),
                0,
                [1, 0, 1234, 0, 1234, 0, 494, 740]
            ),
        ])
    );
    assert_eq!(
        totals(&st),
        [
            ("JPY".to_owned(), [3, 0, 1333, 0, 1333, 30, 921, 382]),
            ("KWD".to_owned(), [4, 1, 5734, 1500, 4234, 0, 2744, 1490]),
        ]
    );
    assert_eq!(
        st.lines[2].terms,
        Some(flat(250, "KWD")),
        "the line keeps the terms it applied"
    );
}

async fn rounding_is_half_even_once_per_line(fx: Fx) {
    let p = fx.partner("ROUND").await;
    let m = fx.model(p, None, share(5000), SINCE_2024, None).await;
    fx.tax("uk", 2000, SINCE_2024).await;
    let at = "2025-01-10T00:00:00Z";
    let taxed = |id: &str, product: &str, amount| {
        Tx::charge(id, p, amount, "GBP", at)
            .product(product)
            .taxed()
    };
    fx.txs(&[
        // 0.03 incl. 20 %: 2.5p ex tax -> 2 (even), payout 1.25p -> 1.
        &taxed("a", "P03", 3),
        // 0.09: 7.5p -> 8 (even), payout 3.75p -> 4.
        &taxed("b", "P09", 9),
        // Two charges of 0.03 in one line: rounded once from the sum 0.06 -> exactly 5p ex
        // tax and a tie 2.5p payout -> 2; per transaction it would have been 2 + 2 ex tax.
        &taxed("c1", "P06", 3),
        &taxed("c2", "P06", 3),
        // 0.18: 15p ex tax, payout 7.5p -> 8 (even).
        &taxed("d", "P18", 18),
        // JPY has no minor unit: 3 yen at 50 % = 1.5 -> 2; 1 yen -> 0.5 -> 0.
        &Tx::charge("j3", p, 3, "JPY", at).product("J3").csp("jp"),
        &Tx::charge("j1", p, 1, "JPY", at).product("J1").csp("jp"),
        // KWD has three: 0.005 at 50 % = 0.0025 -> 0.002.
        &Tx::charge("k5", p, 5, "KWD", at).product("K5").csp("kw"),
    ])
    .await;
    let st = fx.run(p, january()).await;
    assert_eq!(
        lines(&st),
        expect(&[
            (
                "charges",
                "GBP",
                Some("P03"),
                Some(m),
                2000,
                [1, 0, 3, 0, 3, 1, 1, 1]
            ),
            (
                "charges",
                "GBP",
                Some("P06"),
                Some(m),
                2000,
                [2, 0, 6, 0, 6, 1, 3, 2]
            ),
            (
                "charges",
                "GBP",
                Some("P09"),
                Some(m),
                2000,
                [1, 0, 9, 0, 9, 1, 4, 4]
            ),
            (
                "charges",
                "GBP",
                Some("P18"),
                Some(m),
                2000,
                [1, 0, 18, 0, 18, 3, 7, 8]
            ),
            (
                "charges",
                "JPY",
                Some("J1"),
                Some(m),
                0,
                [1, 0, 1, 0, 1, 0, 1, 0]
            ),
            (
                "charges",
                "JPY",
                Some("J3"),
                Some(m),
                0,
                [1, 0, 3, 0, 3, 0, 1, 2]
            ),
            (
                "charges",
                "KWD",
                Some("K5"),
                Some(m),
                0,
                [1, 0, 5, 0, 5, 0, 3, 2]
            ),
        ])
    );
    // Totals are the exact sums of the lines, not a second rounding of the grand total
    // (0.36 at 50 % / 1.2 would be 15p; the lines pay 1 + 2 + 4 + 8 = 15p here too, but the
    // tax total is the lines' 6p, not 0.36 - 0.30 = 6p by luck: check both explicitly).
    assert_eq!(
        totals(&st),
        [
            ("GBP".to_owned(), [5, 0, 36, 0, 36, 6, 15, 15]),
            ("JPY".to_owned(), [2, 0, 4, 0, 4, 0, 2, 2]),
            ("KWD".to_owned(), [1, 0, 5, 0, 5, 0, 3, 2]),
        ]
    );
}

async fn model_changing_mid_period_splits_lines(fx: Fx) {
    let p = fx.partner("NFLX").await;
    let m70 = fx.model(p, None, share(7000), SINCE_2024, None).await;
    // An open-ended default from mid-January supersedes the earlier open-ended one.
    let m50 = match fx
        .add_model(p, None, share(5000), "2025-01-16T00:00:00Z", None)
        .await
    {
        ModelAddOutcome::Added {
            model,
            superseded: Some(old),
        } => {
            assert_eq!(old.id, m70);
            assert_eq!(old.valid_to, Some(t("2025-01-16T00:00:00Z")));
            model.id
        }
        other => panic!("{other:?}"),
    };
    // A product rule for ten days only.
    let prem = fx
        .model(
            p,
            Some("PREM"),
            share(8000),
            "2025-01-10T00:00:00Z",
            Some("2025-01-20T00:00:00Z"),
        )
        .await;
    // Overlapping rules are refused (the database would refuse them too).
    let refused = fx
        .add_model(
            p,
            Some("PREM"),
            share(1000),
            "2025-01-19T00:00:00Z",
            Some("2025-01-25T00:00:00Z"),
        )
        .await;
    assert!(
        matches!(&refused, ModelAddOutcome::Overlaps { existing } if existing.id == prem),
        "{refused:?}"
    );
    let bounded_default = fx
        .add_model(
            p,
            None,
            share(1000),
            "2025-01-10T00:00:00Z",
            Some("2025-01-12T00:00:00Z"),
        )
        .await;
    assert!(
        matches!(&bounded_default, ModelAddOutcome::Overlaps { existing } if existing.id == m70),
        "{bounded_default:?}"
    );
    assert!(
        fx.raw
            .exec(&format!(
                "INSERT INTO settlement_models (partner_id, product_code, kind, share_bp, valid_from, created_at) \
                 VALUES ({p}, 'PREM', 'REVENUE_SHARE', 100, {}, 0)",
                t("2025-01-15T00:00:00Z").unix_millis()
            ))
            .await
            .unwrap_err()
            .contains("overlap")
    );

    let prem_tx = |id: &str, at: &str| Tx::charge(id, p, 1000, "GBP", at).product("PREM");
    fx.txs(&[
        &prem_tx("p1", "2025-01-05T00:00:00Z"), // before the rule: default 70 %
        &prem_tx("p2", "2025-01-12T00:00:00Z"), // rule 80 %
        &prem_tx("p3", "2025-01-19T23:59:59.999Z"), // rule 80 % (ends exclusive at the 20th)
        &prem_tx("p4", "2025-01-25T00:00:00Z"), // after the rule: default 50 %
        &Tx::charge("d1", p, 1000, "GBP", "2025-01-15T23:59:59.999Z"), // 70 %
        &Tx::charge("d2", p, 1000, "GBP", "2025-01-16T00:00:00Z"), // 50 % (inclusive)
    ])
    .await;
    let st = fx.run(p, january()).await;
    assert_eq!(
        lines(&st),
        expect(&[
            (
                "charges",
                "GBP",
                None,
                Some(m70),
                0,
                [1, 0, 1000, 0, 1000, 0, 300, 700]
            ),
            (
                "charges",
                "GBP",
                None,
                Some(m50),
                0,
                [1, 0, 1000, 0, 1000, 0, 500, 500]
            ),
            (
                "charges",
                "GBP",
                Some("PREM"),
                Some(m70),
                0,
                [1, 0, 1000, 0, 1000, 0, 300, 700]
            ),
            (
                "charges",
                "GBP",
                Some("PREM"),
                Some(m50),
                0,
                [1, 0, 1000, 0, 1000, 0, 500, 500]
            ),
            (
                "charges",
                "GBP",
                Some("PREM"),
                Some(prem),
                0,
                [2, 0, 2000, 0, 2000, 0, 400, 1600]
            ),
        ])
    );
    let listed = fx.store.list_settlement_models(Some(p)).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|m| m.id).collect();
    assert_eq!(ids, [m70, m50, prem]);
}

async fn refund_after_a_final_period_is_an_adjustment(fx: Fx) {
    let p = fx.partner("NFLX").await;
    let m70 = fx.model(p, None, share(7000), SINCE_2024, None).await;
    let c1 = Tx::charge("c1", p, 1000, "GBP", "2025-01-10T00:00:00Z");
    fx.txs(&[
        &c1,
        &Tx::charge("c2", p, 500, "GBP", "2025-01-11T00:00:00Z"),
    ])
    .await;
    let jan = fx.run(p, january()).await;
    let jan_lines = expect(&[(
        "charges",
        "GBP",
        None,
        Some(m70),
        0,
        [2, 0, 1500, 0, 1500, 0, 450, 1050],
    )]);
    assert_eq!(lines(&jan), jan_lines);
    let FinaliseOutcome::Finalised(final_jan) = fx.finalise(jan.header.id).await else {
        panic!("January should finalise")
    };
    assert_eq!(final_jan.header.status, StatementStatus::Final);
    assert!(final_jan.header.finalised_at.is_some());

    // Models can no longer change inside January; from February on they can.
    let inside = fx
        .add_model(p, None, share(6000), "2025-01-20T00:00:00Z", None)
        .await;
    assert!(
        matches!(inside, ModelAddOutcome::InFinalPeriod { final_until } if final_until == t("2025-02-01T00:00:00Z")),
        "{inside:?}"
    );
    let tax_inside = fx
        .store
        .set_tax_rate(NewTaxRate {
            csp_id: "uk".into(),
            rate_bp: 2000,
            valid_from: t("2025-01-20T00:00:00Z"),
        })
        .await
        .unwrap();
    assert!(matches!(tax_inside, TaxRateOutcome::InFinalPeriod { .. }));
    let m60 = fx
        .model(p, None, share(6000), "2025-02-01T00:00:00Z", None)
        .await;

    let c3 = Tx::charge("c3", p, 200, "GBP", "2025-02-04T00:00:00Z");
    fx.txs(&[
        &Tx::refund("r1", &c1, 400, "2025-02-03T00:00:00Z"),
        &c3,
        &Tx::refund("r2", &c3, 200, "2025-02-05T00:00:00Z"),
    ])
    .await;
    let feb = fx.run(p, february()).await;
    // r1 reverses a January charge at January's 70 %: payout -2.80, CSP -1.20.
    assert_eq!(
        lines(&feb),
        expect(&[
            (
                "charges",
                "GBP",
                None,
                Some(m60),
                0,
                [1, 1, 200, 200, 0, 0, 0, 0]
            ),
            (
                "adjustment",
                "GBP",
                None,
                Some(m70),
                0,
                [0, 1, 0, 400, -400, 0, -120, -280]
            ),
        ])
    );
    assert_eq!(
        totals(&feb),
        [("GBP".to_owned(), [1, 2, 200, 600, -400, 0, -120, -280])]
    );

    // January is untouched, and running it again changes nothing.
    let again = fx
        .store
        .run_statement(p, january(), Timestamp::now())
        .await
        .unwrap();
    let RunOutcome::Final(again) = again else {
        panic!("{again:?}")
    };
    assert_eq!(again, final_jan);
    assert_eq!(lines(&again), jan_lines);
}

async fn running_twice_gives_the_same_statement(fx: Fx) {
    let p = fx.partner("NFLX").await;
    fx.model(p, None, share(7000), SINCE_2024, None).await;
    fx.txs(&[&Tx::charge("c1", p, 1000, "GBP", "2025-01-10T00:00:00Z")])
        .await;
    let first = fx.run(p, january()).await;
    let second = fx.run(p, january()).await;
    assert_eq!(second.header.id, first.header.id);
    assert_eq!(second.header.revision, first.header.revision + 1);
    assert_eq!(second.lines, first.lines);

    // A draft follows the data: recomputing replaces its lines.
    fx.txs(&[&Tx::charge("c2", p, 500, "GBP", "2025-01-11T00:00:00Z")])
        .await;
    let third = fx.run(p, january()).await;
    assert_eq!(third.header.id, first.header.id);
    assert_eq!(third.lines.len(), 1);
    assert_eq!(third.lines[0].gross_minor, 1500);

    // Parallel runs (any instance, any CLI) still make one statement.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let store = fx.store.clone();
            tokio::spawn(async move {
                store
                    .run_statement(p, january(), Timestamp::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    for r in runs {
        match r.await.unwrap() {
            RunOutcome::Computed(st) => assert_eq!(st.header.id, first.header.id),
            other => panic!("{other:?}"),
        }
    }
    let all = fx.store.list_statements(Some(p)).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, first.header.id);
    assert_eq!(
        fx.store
            .statement(first.header.id)
            .await
            .unwrap()
            .unwrap()
            .lines[0]
            .gross_minor,
        1500
    );
    assert_eq!(
        fx.store.statement(first.header.id + 1000).await.unwrap(),
        None
    );
}

async fn final_statements_refuse_direct_sql(fx: Fx) {
    let p = fx.partner("NFLX").await;
    fx.model(p, None, share(7000), SINCE_2024, None).await;
    fx.txs(&[&Tx::charge("c1", p, 1000, "GBP", "2025-01-10T00:00:00Z")])
        .await;
    let draft = fx.run(p, january()).await;
    let id = draft.header.id;

    // While a draft, its rows are ordinary (and still hold the arithmetic checks).
    let broken = fx
        .raw
        .exec(&format!(
            "UPDATE settlement_lines SET payout_minor = payout_minor + 1 WHERE statement_id = {id}"
        ))
        .await;
    assert!(broken.is_err(), "net = tax + CSP + payout is checked");
    assert_eq!(
        fx.raw
            .exec(&format!(
                "UPDATE settlement_lines SET payout_minor = payout_minor + 1, csp_share_minor = csp_share_minor - 1 \
                 WHERE statement_id = {id}"
            ))
            .await,
        Ok(1)
    );
    // That edit makes the draft disagree with the data: finalising it is refused.
    assert_eq!(fx.finalise(id).await, FinaliseOutcome::Stale);
    fx.run(p, january()).await;

    let FinaliseOutcome::Finalised(fin) = fx.finalise(id).await else {
        panic!("should finalise")
    };
    for sql in [
        format!("UPDATE settlement_statements SET revision = 99 WHERE id = {id}"),
        format!(
            "UPDATE settlement_statements SET status = 'DRAFT', finalised_at = NULL WHERE id = {id}"
        ),
        format!("DELETE FROM settlement_statements WHERE id = {id}"),
        format!(
            "UPDATE settlement_lines SET payout_minor = 0, csp_share_minor = net_minor WHERE statement_id = {id}"
        ),
        format!("DELETE FROM settlement_lines WHERE statement_id = {id}"),
        format!(
            "INSERT INTO settlement_lines (statement_id, line_no, kind, currency, tax_rate_bp, charges, refunds, \
             gross_minor, refunded_minor, net_minor, tax_minor, csp_share_minor, payout_minor) \
             VALUES ({id}, 9, 'charges', 'GBP', 0, 1, 0, 1, 0, 1, 0, 1, 0)"
        ),
    ] {
        let refused = fx.raw.exec(&sql).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("final")),
            "{sql}: {refused:?}"
        );
    }
    if matches!(fx.raw, Raw::Postgres(_)) {
        let refused = fx.raw.exec("TRUNCATE settlement_lines").await;
        assert!(refused.is_err_and(|e| e.contains("final")));
    }
    // Nor through the store.
    let rerun = fx
        .store
        .run_statement(p, january(), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(rerun, RunOutcome::Final(fin.clone()));
    assert_eq!(
        fx.finalise(id).await,
        FinaliseOutcome::AlreadyFinal(fin.clone())
    );
    assert_eq!(fx.store.statement(id).await.unwrap(), Some(fin));
}

async fn finalising_needs_an_ended_settled_priced_fresh_period(fx: Fx) {
    let p = fx.partner("NFLX").await;
    fx.model(p, None, flat(50, "GBP"), SINCE_2024, None).await;
    assert_eq!(fx.finalise(424242).await, FinaliseOutcome::NotFound);

    // A period that has not ended (or only just) cannot be final.
    let now = Timestamp::now();
    let open = Period::new(now.plus_millis(-86_400_000), now.plus_millis(-1000)).unwrap();
    let st = fx.run(p, open).await;
    assert_eq!(
        fx.finalise(st.header.id).await,
        FinaliseOutcome::PeriodNotOver {
            finalisable_from: open.to().plus_millis(FINALISE_GRACE_MS)
        }
    );

    // A pending transaction holds the period open.
    fx.txs(&[
        &Tx::charge("c1", p, 1000, "GBP", "2025-01-10T00:00:00Z"),
        &Tx::charge("c2", p, 1000, "GBP", "2025-01-11T00:00:00Z").status("PENDING"),
    ])
    .await;
    let jan = fx.run(p, january()).await;
    assert_eq!(jan.lines[0].charges, 1);
    assert_eq!(
        fx.finalise(jan.header.id).await,
        FinaliseOutcome::PendingTransactions { count: 1 }
    );
    // Once it settles, the draft is stale until it is run again.
    fx.raw
        .exec("UPDATE transactions SET status = 'SUCCESS' WHERE id = 'c2'")
        .await
        .unwrap();
    assert_eq!(fx.finalise(jan.header.id).await, FinaliseOutcome::Stale);
    let jan = fx.run(p, january()).await;
    assert_eq!(jan.lines[0].charges, 2);

    // A flat cost in GBP cannot price EUR: the line is flagged and blocks finalising.
    fx.txs(&[&Tx::charge("e1", p, 700, "EUR", "2025-01-12T00:00:00Z")])
        .await;
    let jan = fx.run(p, january()).await;
    let eur = jan.lines.iter().find(|l| l.currency == "EUR").unwrap();
    assert_eq!(eur.issue, Some(LineIssue::CurrencyMismatch));
    assert_eq!((eur.payout_minor, eur.csp_share_minor), (0, 700));
    assert_eq!(
        fx.finalise(jan.header.id).await,
        FinaliseOutcome::Unpriced { lines: 1 }
    );
    // So does a partner without any model.
    let q = fx.partner("NOMODEL").await;
    fx.txs(&[&Tx::charge("n1", q, 100, "GBP", "2025-01-12T00:00:00Z")])
        .await;
    let bare = fx.run(q, january()).await;
    assert_eq!(bare.lines[0].issue, Some(LineIssue::NoModel));
    assert_eq!(
        fx.finalise(bare.header.id).await,
        FinaliseOutcome::Unpriced { lines: 1 }
    );

    // An EUR model from January on prices it; then January finalises, and no overlapping
    // period of the partner can be run or finalised any more.
    fx.raw
        .exec("UPDATE transactions SET currency = 'GBP' WHERE id = 'e1'")
        .await
        .unwrap_err(); // the amounts of final transactions are fixed
    fx.raw
        .exec("DELETE FROM transactions WHERE id = 'e1'")
        .await
        .unwrap();
    let jan = fx.run(p, january()).await;
    assert!(matches!(
        fx.finalise(jan.header.id).await,
        FinaliseOutcome::Finalised(_)
    ));
    let straddling = month("2025-01-15T00:00:00Z", "2025-02-15T00:00:00Z");
    assert_eq!(
        fx.store
            .run_statement(p, straddling, Timestamp::now())
            .await
            .unwrap(),
        RunOutcome::OverlapsFinal {
            statement_id: jan.header.id
        }
    );
}
