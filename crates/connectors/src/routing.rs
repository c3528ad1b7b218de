//! Which CSP serves a customer: the longest matching E.164 prefix for an MSISDN; for an
//! email, the CSPs that accept emails, asked in configured order.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use dcbhub_domain::{Customer, Msisdn, PartnerCode};

use crate::{AccountOutcome, CallContext, ConnectorError, CspConnector};

/// One configured CSP.
#[derive(Clone)]
pub struct CspEntry {
    pub id: String,
    pub connector: Arc<dyn CspConnector>,
    /// E.164 digit prefixes without `+`, e.g. `44` or `447700900`.
    pub prefixes: Vec<String>,
    pub accepts_email: bool,
}

impl fmt::Debug for CspEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CspEntry")
            .field("id", &self.id)
            .field("kind", &self.connector.kind())
            .field("prefixes", &self.prefixes)
            .field("accepts_email", &self.accepts_email)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("a CSP id must not be empty")]
    EmptyId,
    #[error("CSP id {0:?} is configured twice")]
    DuplicateId(String),
    #[error(
        "CSP {csp:?}: prefix {prefix:?} must be 1 to 15 digits (an optional leading + is ignored)"
    )]
    BadPrefix { csp: String, prefix: String },
}

/// The routing table, immutable once built.
#[derive(Clone, Debug, Default)]
pub struct CspRegistry {
    entries: Vec<CspEntry>,
}

impl CspRegistry {
    /// Checks ids (non-empty, unique) and prefixes (digits; a leading `+` is dropped).
    pub fn new(entries: Vec<CspEntry>) -> Result<Self, RoutingError> {
        let mut seen = HashSet::new();
        let mut checked = Vec::with_capacity(entries.len());
        for mut entry in entries {
            if entry.id.is_empty() {
                return Err(RoutingError::EmptyId);
            }
            if !seen.insert(entry.id.clone()) {
                return Err(RoutingError::DuplicateId(entry.id));
            }
            let mut prefixes = Vec::with_capacity(entry.prefixes.len());
            for raw in &entry.prefixes {
                let digits = raw.strip_prefix('+').unwrap_or(raw);
                if digits.is_empty()
                    || digits.len() > 15
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(RoutingError::BadPrefix {
                        csp: entry.id.clone(),
                        prefix: raw.clone(),
                    });
                }
                prefixes.push(digits.to_owned());
            }
            entry.prefixes = prefixes;
            checked.push(entry);
        }
        Ok(Self { entries: checked })
    }

    pub fn entries(&self) -> &[CspEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&CspEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The CSP with the longest prefix of the number; on a tie, the first configured.
    pub fn route_msisdn(&self, msisdn: &Msisdn) -> Option<&CspEntry> {
        let digits = msisdn.digits();
        let mut best: Option<(&CspEntry, usize)> = None;
        for entry in &self.entries {
            for prefix in &entry.prefixes {
                let longer = best.is_none_or(|(_, len)| prefix.len() > len);
                if longer && digits.starts_with(prefix.as_str()) {
                    best = Some((entry, prefix.len()));
                }
            }
        }
        best.map(|(entry, _)| entry)
    }

    /// The CSPs that look customers up by email, in configured order.
    pub fn email_candidates(&self) -> impl Iterator<Item = &CspEntry> {
        self.entries.iter().filter(|e| e.accepts_email)
    }

    /// Finds the customer's CSP and account. An MSISDN goes to its prefix's CSP; an email is
    /// offered to the email-accepting CSPs in order until one answers something other than
    /// `NotFound` (an unavailable CSP stops the search: a later CSP must not win just
    /// because an earlier one was down). `Ok(None)`: no CSP knows the customer.
    pub async fn resolve(
        &self,
        customer: &Customer,
        partner: &PartnerCode,
        ctx: &CallContext,
    ) -> Result<Option<(&CspEntry, AccountOutcome)>, ConnectorError> {
        match customer {
            Customer::Msisdn(msisdn) => {
                let Some(entry) = self.route_msisdn(msisdn) else {
                    return Ok(None);
                };
                match entry
                    .connector
                    .validate_account(customer, partner, ctx)
                    .await?
                {
                    AccountOutcome::NotFound => Ok(None),
                    outcome => Ok(Some((entry, outcome))),
                }
            }
            Customer::Email(_) => {
                for entry in self.email_candidates() {
                    match entry
                        .connector
                        .validate_account(customer, partner, ctx)
                        .await?
                    {
                        AccountOutcome::NotFound => continue,
                        outcome => return Ok(Some((entry, outcome))),
                    }
                }
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AccountType, ChargeOutcome, ChargeRequest, Notification, NotifyOutcome, StatusOutcome,
    };
    use async_trait::async_trait;
    use dcbhub_domain::{Currency, Email, TransactionId};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers validate with a fixed outcome and counts calls.
    struct Fixed {
        answer: Result<AccountOutcome, ConnectorError>,
        calls: AtomicUsize,
    }

    impl Fixed {
        fn new(answer: Result<AccountOutcome, ConnectorError>) -> Arc<Self> {
            Arc::new(Self {
                answer,
                calls: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait]
    impl CspConnector for Fixed {
        fn kind(&self) -> &'static str {
            "fixed"
        }
        async fn validate_account(
            &self,
            _: &Customer,
            _: &PartnerCode,
            _: &CallContext,
        ) -> Result<AccountOutcome, ConnectorError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.answer.clone()
        }
        async fn charge(&self, _: &ChargeRequest, _: &CallContext) -> ChargeOutcome {
            ChargeOutcome::Unknown
        }
        async fn charge_status(&self, _: &TransactionId, _: &CallContext) -> StatusOutcome {
            StatusOutcome::Unavailable
        }
        async fn notify(&self, _: &Notification, _: &CallContext) -> NotifyOutcome {
            NotifyOutcome::Delivered
        }
    }

    fn active(account_ref: &str) -> AccountOutcome {
        AccountOutcome::Active {
            account_type: AccountType::Postpaid,
            currency: Currency::parse("GBP").unwrap(),
            account_ref: account_ref.into(),
        }
    }

    fn entry(
        id: &str,
        connector: Arc<dyn CspConnector>,
        prefixes: &[&str],
        email: bool,
    ) -> CspEntry {
        CspEntry {
            id: id.into(),
            connector,
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
            accepts_email: email,
        }
    }

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    fn partner() -> PartnerCode {
        PartnerCode::parse("NFLX").unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_ties_go_to_the_first() {
        let c = Fixed::new(Ok(active("x")));
        let registry = CspRegistry::new(vec![
            entry("uk", c.clone(), &["44"], false),
            entry("drama", c.clone(), &["+447700900"], false),
            entry("uk-mobile", c.clone(), &["447"], false),
            entry("uk-dup", c.clone(), &["447"], false),
            entry("us", c.clone(), &["1"], false),
        ])
        .unwrap();
        let route = |s: &str| registry.route_msisdn(&msisdn(s)).map(|e| e.id.as_str());
        assert_eq!(route("+447700900123"), Some("drama"));
        assert_eq!(route("+447911123456"), Some("uk-mobile"));
        assert_eq!(route("+442071234567"), Some("uk"));
        assert_eq!(route("+14155550123"), Some("us"));
        assert_eq!(route("+33612345678"), None);
        // The leading + of a configured prefix is dropped.
        assert_eq!(
            registry.get("drama").unwrap().prefixes,
            vec!["447700900".to_owned()]
        );
    }

    #[test]
    fn refuses_bad_configuration() {
        let c = Fixed::new(Ok(active("x")));
        let bad = |prefix: &str| {
            CspRegistry::new(vec![entry("a", c.clone(), &[prefix], false)]).unwrap_err()
        };
        assert!(matches!(bad("4a"), RoutingError::BadPrefix { .. }));
        assert!(matches!(bad(""), RoutingError::BadPrefix { .. }));
        assert!(matches!(bad("+"), RoutingError::BadPrefix { .. }));
        assert!(matches!(
            bad("1234567890123456"),
            RoutingError::BadPrefix { .. }
        ));
        let dup = CspRegistry::new(vec![
            entry("a", c.clone(), &["44"], false),
            entry("a", c.clone(), &["33"], false),
        ]);
        assert_eq!(dup.unwrap_err(), RoutingError::DuplicateId("a".into()));
        assert_eq!(
            CspRegistry::new(vec![entry("", c, &["44"], false)]).unwrap_err(),
            RoutingError::EmptyId
        );
    }

    #[test]
    fn email_candidates_keep_configured_order() {
        let c = Fixed::new(Ok(active("x")));
        let registry = CspRegistry::new(vec![
            entry("b", c.clone(), &["44"], true),
            entry("no-email", c.clone(), &["33"], false),
            entry("a", c.clone(), &["49"], true),
        ])
        .unwrap();
        let ids: Vec<_> = registry.email_candidates().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "a"]);
    }

    #[tokio::test]
    async fn resolve_asks_email_csps_in_order_until_one_knows_the_customer() {
        let unknown = Fixed::new(Ok(AccountOutcome::NotFound));
        let knows = Fixed::new(Ok(active("acc-2")));
        let never_asked = Fixed::new(Ok(active("acc-3")));
        let registry = CspRegistry::new(vec![
            entry("first", unknown.clone(), &[], true),
            entry("second", knows.clone(), &[], true),
            entry("third", never_asked.clone(), &[], true),
        ])
        .unwrap();
        let email = Customer::Email(Email::parse("ann@example.com").unwrap());
        let (csp, outcome) = registry
            .resolve(&email, &partner(), &CallContext::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(csp.id, "second");
        assert_eq!(outcome, active("acc-2"));
        assert_eq!(unknown.calls.load(Ordering::SeqCst), 1);
        assert_eq!(never_asked.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn resolve_answers_none_when_nobody_knows_the_customer() {
        let unknown = Fixed::new(Ok(AccountOutcome::NotFound));
        let registry = CspRegistry::new(vec![
            entry("uk", unknown.clone(), &["44"], true),
            entry("fr", unknown.clone(), &["33"], false),
        ])
        .unwrap();
        let ctx = CallContext::default();
        let email = Customer::Email(Email::parse("ann@example.com").unwrap());
        assert!(
            registry
                .resolve(&email, &partner(), &ctx)
                .await
                .unwrap()
                .is_none()
        );
        let routed_not_found = Customer::Msisdn(msisdn("+447700900002"));
        assert!(
            registry
                .resolve(&routed_not_found, &partner(), &ctx)
                .await
                .unwrap()
                .is_none()
        );
        let unrouted = Customer::Msisdn(msisdn("+14155550123"));
        assert!(
            registry
                .resolve(&unrouted, &partner(), &ctx)
                .await
                .unwrap()
                .is_none()
        );
        // Only the two routed lookups reached a connector.
        assert_eq!(unknown.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn resolve_routes_msisdns_and_passes_errors_on() {
        let down = Fixed::new(Err(ConnectorError::Unavailable {
            retry_after_secs: 7,
        }));
        let barred = Fixed::new(Ok(AccountOutcome::Barred));
        let registry = CspRegistry::new(vec![
            entry("down", down.clone(), &["44"], true),
            entry("barred", barred.clone(), &["447700900"], true),
        ])
        .unwrap();
        let ctx = CallContext::default();
        let (csp, outcome) = registry
            .resolve(&Customer::Msisdn(msisdn("+447700900005")), &partner(), &ctx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (csp.id.as_str(), outcome),
            ("barred", AccountOutcome::Barred)
        );
        let err = registry
            .resolve(&Customer::Msisdn(msisdn("+447911123456")), &partner(), &ctx)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ConnectorError::Unavailable {
                retry_after_secs: 7
            }
        );
        // An email search stops at the unavailable first CSP.
        let email = Customer::Email(Email::parse("ann@example.com").unwrap());
        assert!(registry.resolve(&email, &partner(), &ctx).await.is_err());
        assert_eq!(barred.calls.load(Ordering::SeqCst), 1);
    }
}
