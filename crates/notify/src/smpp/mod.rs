//! SMS over SMPP 3.4 with the `rusmppc` client: one transmitter session shared by every
//! delivery, bound on first use and bound again after the link drops.
//!
//! Logging: `rusmppc` turns on `rusmpp`'s `tracing` feature, whose codec logs every PDU in
//! full at DEBUG under the `rusmpp::codec` target, the bind password and the message text (a
//! PIN) included. The service's log filter must keep that target at INFO or above: see
//! [`SENSITIVE_LOG_DIRECTIVES`].

mod config;
pub mod encoding;
mod gsm7;
mod status;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use dcbhub_domain::{Customer, Msisdn, NotificationId};
use futures_util::{Stream, StreamExt};
use rusmpp::{
    CommandId, CommandStatus,
    pdus::{BindTransmitter, SubmitSm},
    tlvs::MessageSubmissionRequestTlvValue,
    types::{COctetString, OctetString},
    values::{DataCoding, EsmClass, Npi, Ton, UserMessageReference},
};
use rusmppc::{Client, ConnectionBuilder, Event, error::Error as SmppError};
use tokio::{net::TcpStream, sync::Mutex};
use tracing::{debug, info, warn};

pub use config::{SmppConfig, SmppConfigError};

use crate::{Channel, DeliveryError, OutboundMessage};

/// `tracing` filter directives that keep PDU dumps (with PINs and the SMPP password) out of
/// the logs; add them to the service's `EnvFilter` after the user's own directives.
pub const SENSITIVE_LOG_DIRECTIVES: &[&str] = &["rusmpp=info"];

/// The SMPP channel. Cheap to share behind an `Arc`; deliveries run concurrently on one session.
pub struct SmppChannel {
    config: SmppConfig,
    bind: BindTransmitter,
    source_addr: COctetString<1, 21>,
    slot: Mutex<SessionSlot>,
}

#[derive(Default)]
struct SessionSlot {
    session: Option<Session>,
    binds: u64,
}

#[derive(Clone)]
struct Session {
    client: Client,
    generation: u64,
    /// Set by the session's event task when the SMSC unbinds or the link fails.
    broken: Arc<AtomicBool>,
}

impl Session {
    fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire) && self.client.is_active()
    }
}

impl SmppChannel {
    /// Checks the configuration; the SMSC is first contacted by the first delivery (or
    /// [`SmppChannel::connect`]).
    pub fn new(config: SmppConfig) -> Result<Self, SmppConfigError> {
        config.validate()?;
        Ok(Self {
            bind: config.bind_transmitter()?,
            source_addr: config.source_addr()?,
            config,
            slot: Mutex::new(SessionSlot::default()),
        })
    }

    /// Binds now unless a session is already up, e.g. to fail fast at start-up.
    pub async fn connect(&self) -> Result<(), DeliveryError> {
        self.session().await.map(drop)
    }

    /// Whether a bound session is up right now.
    pub async fn is_bound(&self) -> bool {
        self.slot
            .lock()
            .await
            .session
            .as_ref()
            .is_some_and(Session::is_usable)
    }

    /// How many times this channel has bound to the SMSC.
    pub async fn bind_count(&self) -> u64 {
        self.slot.lock().await.binds
    }

    /// Unbinds and closes the session, if any. The next delivery binds again.
    pub async fn close(&self) {
        let session = self.slot.lock().await.session.take();
        if let Some(session) = session {
            if session.is_usable() && session.client.unbind().await.is_err() {
                debug!(
                    generation = session.generation,
                    "SMPP unbind failed; closing anyway"
                );
            }
            session.client.close().await.ok();
        }
    }

    /// The current session, binding a new one when there is none or it broke. The lock is
    /// held while binding, so concurrent deliveries wait for one bind instead of racing.
    async fn session(&self) -> Result<Session, DeliveryError> {
        let mut slot = self.slot.lock().await;
        if let Some(session) = slot.session.as_ref().filter(|s| s.is_usable()) {
            return Ok(session.clone());
        }
        if let Some(old) = slot.session.take() {
            old.client.close().await.ok();
        }
        slot.binds += 1;
        let session = self.open_session(slot.binds).await?;
        slot.session = Some(session.clone());
        Ok(session)
    }

    async fn open_session(&self, generation: u64) -> Result<Session, DeliveryError> {
        let timeout = self.config.timeout();
        let address = (self.config.host.as_str(), self.config.port);
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| DeliveryError::Transient("connecting to the SMSC timed out".into()))?
            .map_err(|e| DeliveryError::Transient(format!("connecting to the SMSC: {e}")))?;
        stream.set_nodelay(true).ok();
        // rusmppc checks for SMPP 5.0 by default; we speak the 3.4 subset it also encodes.
        let (client, events) = ConnectionBuilder::new()
            .response_timeout(timeout)
            .enquire_link_interval(self.config.enquire_link_interval())
            .enquire_link_response_timeout(timeout)
            .disable_interface_version_check()
            .connected(stream);
        let broken = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_events(events, generation, broken.clone()));
        match client.bind_transmitter(self.bind.clone()).await {
            Ok(resp) => {
                info!(generation, smsc = %resp.system_id, "bound to the SMSC as transmitter");
                Ok(Session {
                    client,
                    generation,
                    broken,
                })
            }
            Err(e) => {
                client.close().await.ok();
                warn!(generation, error = %describe(&e), "bind_transmitter failed");
                Err(DeliveryError::Transient(format!(
                    "bind_transmitter: {}",
                    describe(&e)
                )))
            }
        }
    }

    /// Drops `session` if it is still the current one, so the next delivery binds again.
    async fn discard(&self, session: &Session) {
        let mut slot = self.slot.lock().await;
        if slot
            .session
            .as_ref()
            .is_some_and(|s| s.generation == session.generation)
        {
            slot.session = None;
        }
        drop(slot);
        session.client.close().await.ok();
    }

    fn submit_sm(
        &self,
        to: &COctetString<1, 21>,
        coding: encoding::Coding,
        segment: &encoding::Segment,
        reference: u16,
    ) -> Result<SubmitSm, DeliveryError> {
        let short_message = OctetString::from_vec(segment.short_message())
            .map_err(|e| DeliveryError::Permanent(format!("short_message: {e}")))?;
        Ok(SubmitSm::builder()
            .source_addr_ton(Ton::from(self.config.source_ton))
            .source_addr_npi(Npi::from(self.config.source_npi))
            .source_addr(self.source_addr.clone())
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::Isdn)
            .destination_addr(to.clone())
            .esm_class(EsmClass::from(segment.esm_class()))
            .data_coding(DataCoding::from(coding.data_coding()))
            .short_message(short_message)
            .push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
                UserMessageReference::new(reference),
            ))
            .build())
    }

    async fn send(&self, to: &Msisdn, msg: &OutboundMessage) -> Result<(), DeliveryError> {
        let fingerprint = fingerprint(&msg.id);
        let [concat_reference, umr_hi, umr_lo, _] = fingerprint.to_le_bytes();
        let encoded = encoding::encode(&msg.text, concat_reference)
            .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let destination: COctetString<1, 21> = to.digits().parse().map_err(|_| {
            DeliveryError::Permanent("the MSISDN does not fit destination_addr".into())
        })?;
        let user_message_reference = u16::from_be_bytes([umr_hi, umr_lo]);
        let pdus = encoded
            .segments
            .iter()
            .map(|s| self.submit_sm(&destination, encoded.coding, s, user_message_reference))
            .collect::<Result<Vec<_>, _>>()?;

        let session = self.session().await?;
        // At least once: a retry after a partly submitted message sends every segment again.
        for (i, pdu) in pdus.into_iter().enumerate() {
            if let Err(e) = session.client.submit_sm(pdu).await {
                let error = self.classify(&session, e).await;
                warn!(
                    notification_id = %msg.id, to = %to, segment = i + 1, segments = encoded.segments.len(),
                    error = %error, "submit_sm failed"
                );
                return Err(error);
            }
        }
        info!(
            notification_id = %msg.id, to = %to, coding = ?encoded.coding,
            segments = encoded.segments.len(), user_message_reference, "SMS submitted"
        );
        Ok(())
    }

    async fn classify(&self, session: &Session, error: SmppError) -> DeliveryError {
        let description = describe(&error);
        match error {
            SmppError::UnexpectedResponse { response } => {
                let status = response.status();
                if status::breaks_session(status) {
                    self.discard(session).await;
                }
                if status::is_transient(status) {
                    DeliveryError::Transient(description)
                } else {
                    DeliveryError::Permanent(description)
                }
            }
            SmppError::Encode(_) => DeliveryError::Permanent(description),
            // The link broke or timed out: whatever the SMSC got, bind afresh next time.
            _ => {
                self.discard(session).await;
                DeliveryError::Transient(description)
            }
        }
    }
}

#[async_trait]
impl Channel for SmppChannel {
    fn name(&self) -> &'static str {
        "smpp"
    }

    async fn deliver(&self, msg: &OutboundMessage) -> Result<(), DeliveryError> {
        match &msg.to {
            Customer::Msisdn(to) => self.send(to, msg).await,
            Customer::Email(_) => Err(DeliveryError::Permanent(
                "SMPP cannot deliver to an email address".into(),
            )),
        }
    }
}

/// Drains a session's events, marking it broken when the SMSC unbinds or the link fails.
async fn watch_events(
    mut events: impl Stream<Item = Event> + Unpin,
    generation: u64,
    broken: Arc<AtomicBool>,
) {
    while let Some(event) = events.next().await {
        match event {
            Event::Error(e) => {
                broken.store(true, Ordering::Release);
                warn!(generation, error = %describe(&e), "SMPP session failed");
            }
            Event::Incoming(command) if command.id() == CommandId::Unbind => {
                broken.store(true, Ordering::Release);
                info!(generation, "SMSC unbound the session");
            }
            // Late responses and unsolicited operations; never logged whole (they may hold text).
            Event::Incoming(command) => {
                debug!(generation, command_id = ?command.id(), "ignored SMPP command");
            }
        }
    }
    broken.store(true, Ordering::Release);
    debug!(generation, "SMPP session ended");
}

/// An error's description without PDU bodies.
fn describe(error: &SmppError) -> String {
    match error {
        SmppError::UnexpectedResponse { response } => {
            let status: CommandStatus = response.status();
            format!(
                "SMSC answered {:?} with {status:?} ({:#010x})",
                response.id(),
                u32::from(status)
            )
        }
        other => other.to_string(),
    }
}

/// FNV-1a of the notification id: stable across attempts, so a retried message carries the
/// same concatenation reference and user_message_reference.
fn fingerprint(id: &NotificationId) -> u32 {
    id.as_str().bytes().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
