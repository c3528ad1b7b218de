//! A fake SMSC on loopback, built on `rusmpp`'s codec: it accepts `bind_transmitter`,
//! records every `submit_sm` and answers as scripted.
//!
//! Shared by the notify crate's channel tests (`crates/notify/tests/smpp.rs`) and the hub's
//! end-to-end tests (`crates/dcbhub/tests/channels.rs`), each including it with `#[path]`;
//! each suite uses a different part of it, hence the `dead_code` allowance.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use dcbhub_domain::Secret;
use dcbhub_notify::smpp::{
    SmppChannel, SmppConfig,
    encoding::{self, Coding},
};
use futures_util::{SinkExt, StreamExt};
use rusmpp::{
    Command, CommandStatus, Pdu,
    pdus::{BindTransmitterResp, SubmitSmResp},
    tlvs::TlvValue,
    tokio_codec::CommandCodec,
    types::COctetString,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::broadcast,
};
use tokio_util::codec::Framed;

/// What the SMSC does with the next `submit_sm`.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Accept,
    Status(CommandStatus),
    /// Read it, answer nothing, close the connection.
    Drop,
}

#[derive(Clone, Debug)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub interface_version: u8,
}

#[derive(Clone, Debug)]
pub struct Submitted {
    pub data_coding: u8,
    pub esm_class: u8,
    pub short_message: Vec<u8>,
    pub destination: String,
    pub dest_ton: u8,
    pub dest_npi: u8,
    pub source: String,
    pub user_message_reference: Option<u16>,
}

impl Submitted {
    pub fn coding(&self) -> Coding {
        Coding::from_data_coding(self.data_coding).unwrap()
    }
}

#[derive(Default)]
struct State {
    binds: Vec<Bind>,
    submits: Vec<Submitted>,
    script: VecDeque<Reply>,
}

pub struct FakeSmsc {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    kill: broadcast::Sender<()>,
}

pub const PASSWORD: &str = "pa55";

impl FakeSmsc {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (kill, _) = broadcast::channel(4);
        let (s, k) = (state.clone(), kill.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), k.subscribe()));
            }
        });
        Self { addr, state, kill }
    }

    pub fn binds(&self) -> Vec<Bind> {
        self.state.lock().unwrap().binds.clone()
    }

    pub fn submits(&self) -> Vec<Submitted> {
        self.state.lock().unwrap().submits.clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// Closes every open connection.
    pub fn drop_connections(&self) {
        self.kill.send(()).ok();
    }

    /// A channel configuration that binds to this SMSC.
    pub fn config(&self) -> SmppConfig {
        SmppConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            system_id: "dcbhub".into(),
            password: Secret::new(PASSWORD.into()),
            system_type: "OTT".into(),
            source_addr: "DCBHUB".into(),
            source_ton: 5,
            source_npi: 0,
            timeout_ms: 2000,
            enquire_link_interval_ms: 30_000,
        }
    }

    pub fn channel(&self) -> SmppChannel {
        SmppChannel::new(self.config()).unwrap()
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, mut kill: broadcast::Receiver<()>) {
    let mut framed = Framed::new(stream, CommandCodec::new());
    loop {
        let command = tokio::select! {
            _ = kill.recv() => return,
            next = framed.next() => match next {
                Some(Ok(command)) => command,
                _ => return,
            },
        };
        let seq = command.sequence_number();
        let response = match command.pdu() {
            Some(Pdu::BindTransmitter(bind)) => {
                let ok = bind.password.as_str() == PASSWORD;
                state.lock().unwrap().binds.push(Bind {
                    system_id: bind.system_id.to_string(),
                    password: bind.password.to_string(),
                    interface_version: bind.interface_version.into(),
                });
                let status = if ok {
                    CommandStatus::EsmeRok
                } else {
                    CommandStatus::EsmeRinvpaswd
                };
                let system_id: COctetString<1, 16> = "FAKESMSC".parse().unwrap();
                Command::new(
                    status,
                    seq,
                    Pdu::BindTransmitterResp(BindTransmitterResp::new(system_id, None)),
                )
            }
            Some(Pdu::SubmitSm(sm)) => {
                let reply = {
                    let mut state = state.lock().unwrap();
                    let user_message_reference =
                        sm.tlvs().iter().find_map(|tlv| match tlv.value() {
                            Some(TlvValue::UserMessageReference(r)) => Some(r.value),
                            _ => None,
                        });
                    state.submits.push(Submitted {
                        data_coding: sm.data_coding.into(),
                        esm_class: sm.esm_class.into(),
                        short_message: sm.short_message().as_ref().to_vec(),
                        destination: sm.destination_addr.to_string(),
                        dest_ton: sm.dest_addr_ton.into(),
                        dest_npi: sm.dest_addr_npi.into(),
                        source: sm.source_addr.to_string(),
                        user_message_reference,
                    });
                    state.script.pop_front().unwrap_or(Reply::Accept)
                };
                let message_id: COctetString<1, 65> = format!("m{seq}").parse().unwrap();
                match reply {
                    Reply::Accept => Command::new(
                        CommandStatus::EsmeRok,
                        seq,
                        SubmitSmResp::new(message_id, vec![]),
                    ),
                    Reply::Status(status) => Command::new(
                        status,
                        seq,
                        SubmitSmResp::new(COctetString::empty(), vec![]),
                    ),
                    Reply::Drop => return,
                }
            }
            Some(Pdu::EnquireLink) => {
                Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLinkResp)
            }
            Some(Pdu::Unbind) => {
                framed
                    .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
                    .await
                    .ok();
                return;
            }
            _ => Command::new(CommandStatus::EsmeRinvcmdid, seq, Pdu::GenericNack),
        };
        if framed.send(response).await.is_err() {
            return;
        }
    }
}

/// Decodes the submits of one message in part order, checking their UDHs agree.
pub fn reassemble(submits: &[Submitted]) -> String {
    if let [single] = submits {
        assert_eq!(single.esm_class, 0);
        return encoding::decode(single.coding(), &single.short_message).unwrap();
    }
    let mut parts: Vec<_> = submits
        .iter()
        .map(|s| {
            assert_eq!(s.esm_class, 0x40, "UDHI must be set");
            let (c, payload) = encoding::split_udh(&s.short_message).unwrap();
            (c, encoding::decode(s.coding(), payload).unwrap())
        })
        .collect();
    parts.sort_by_key(|(c, _)| c.sequence);
    let reference = parts[0].0.reference;
    for (i, (c, _)) in parts.iter().enumerate() {
        assert_eq!(c.reference, reference);
        assert_eq!(usize::from(c.total), submits.len());
        assert_eq!(usize::from(c.sequence), i + 1);
    }
    parts.into_iter().map(|(_, text)| text).collect()
}
