//! What an SMSC's error status means for a retry.

use rusmpp::CommandStatus;

/// Whether a `submit_sm` refused with `status` may succeed if sent again later.
///
/// Congestion, throttling and system errors are transient; a refused destination, source or
/// message format is permanent. Unknown and vendor-specific codes (0x400–0x4FF) count as
/// transient: the outbox bounds the attempts, and wrongly giving up would lose a PIN.
pub fn is_transient(status: CommandStatus) -> bool {
    use CommandStatus as S;
    match status {
        S::EsmeRthrottled
        | S::EsmeRmsgqful
        | S::EsmeRsyserr
        | S::EsmeRxTAppn
        | S::EsmeRsubmitfail
        | S::EsmeRdeliveryfailure
        | S::EsmeRunknownerr
        | S::EsmeRinvbndsts
        | S::EsmeRbindfail
        | S::EsmeRok
        | S::Other(_) => true,
        // Every other defined code refuses the destination, the source or the message
        // format (ESME_RINVDSTADR, ESME_RINVMSGLEN, ESME_RX_P_APPN, …): resending repeats it.
        _ => false,
    }
}

/// Statuses that mean this session is no use any more: bind again before the next submit.
pub fn breaks_session(status: CommandStatus) -> bool {
    matches!(status, CommandStatus::EsmeRinvbndsts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_common_statuses() {
        for transient in [0x58, 0x14, 0x08, 0x64, 0x04, 0x400, 0x4FF] {
            assert!(
                is_transient(CommandStatus::from(transient)),
                "{transient:#x}"
            );
        }
        for permanent in [0x0B, 0x50, 0x51, 0x01, 0x43, 0x65, 0x66, 0x104, 0xC4] {
            assert!(
                !is_transient(CommandStatus::from(permanent)),
                "{permanent:#x}"
            );
        }
        assert!(breaks_session(CommandStatus::EsmeRinvbndsts));
        assert!(!breaks_session(CommandStatus::EsmeRthrottled));
    }
}
