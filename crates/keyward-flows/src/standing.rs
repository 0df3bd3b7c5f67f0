//! Where a key stands at the CA: what the key itself cannot say.
//!
//! A key fresh from the issuing station holds a transport PIN the station set with
//! C_InitPIN; most tokens raise no "to be changed" flag for it, so only the CA knows the key
//! still waits for 激活证书. Likewise a paid renewal or a seal the CA has made waits on the
//! CA's side for the operator's 安装证书 / 安装印章. The CA answers both in its one public read
//! about a key, so [`standing`] can run whenever a key is plugged in, with no PIN. What else
//! waits (an unlock approved, a renewal to pay) comes from the businesses this computer
//! started, read with their journaled secrets.

use keyward_ca_api::{Business, BusinessKind, BusinessState, KeyState, WaitingInstall};
use keyward_ca_client::{BusinessAuth, CaClient};
use serde::Serialize;

use crate::FlowError;
use crate::journal::{FlowKind, Journal};

/// Something the CA holds for a key until the operator acts in the client, most urgent
/// first (the order is the derived `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingKind {
    /// An unlock was approved: the SMS code and a new PIN finish 忘记密码.
    FinishUnlock,
    /// A renewal is paid or its certificate issued: 安装证书.
    InstallCertificate,
    /// The CA made the seal: 安装印章.
    InstallSeal,
    /// A renewal was applied for and waits for payment (证书续期, continue).
    PayRenewal,
}

/// One business waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// What the operator does next.
    pub kind: WaitingKind,
    /// The business at the CA, when this computer follows it (the public read names none).
    pub business_id: Option<String>,
}

/// A key as the CA sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// Activated or still waiting for 激活证书.
    pub state: KeyState,
    /// Businesses waiting for the operator, most urgent first (one per kind at most).
    pub waiting: Vec<Waiting>,
}

impl Standing {
    /// Is a business of this kind waiting?
    pub fn has(&self, kind: WaitingKind) -> bool {
        self.waiting.iter().any(|w| w.kind == kind)
    }
}

/// What a business waits for, if it waits for the operator at all.
pub fn waiting_for(b: &Business) -> Option<WaitingKind> {
    match (b.kind, b.state) {
        (BusinessKind::Renewal, BusinessState::AwaitingPayment) => Some(WaitingKind::PayRenewal),
        (BusinessKind::Renewal, BusinessState::Paid | BusinessState::CertificateIssued) => {
            Some(WaitingKind::InstallCertificate)
        }
        (BusinessKind::Seal, BusinessState::CertificateIssued) => Some(WaitingKind::InstallSeal),
        (BusinessKind::Unlock, BusinessState::Approved | BusinessState::Authorised) => {
            Some(WaitingKind::FinishUnlock)
        }
        _ => None,
    }
}

/// Where the key `serial` stands at the CA. A key the CA does not know reads as one with
/// nothing waiting (the CA does not tell the two apart).
pub fn standing(ca: &CaClient, journal: &Journal, serial: &str) -> Result<Standing, FlowError> {
    let public = ca.standing(serial).map_err(FlowError::Ca)?;
    let mut followed: Vec<Business> = Vec::new();
    if let Some(j) = journal.load::<crate::unlock::UnlockJournal>(FlowKind::Unlock, serial)? {
        match ca.business(&j.business_id, BusinessAuth::Secret(&j.secret)) {
            Ok(b) => followed.push(b),
            Err(e) => {
                tracing::debug!(serial, error = %e, "the unlock followed here cannot be read")
            }
        }
    }
    if let Some(j) = journal.load::<crate::renew::RenewJournal>(FlowKind::Renew, serial)?
        && let Some(secret) = &j.secret
    {
        match ca.business(&j.business_id, BusinessAuth::Secret(secret)) {
            Ok(b) => followed.push(b),
            Err(e) => {
                tracing::debug!(serial, error = %e, "the renewal followed here cannot be read")
            }
        }
    }
    let mut waiting = collect_waiting(&followed);
    for w in public.waiting {
        let kind = match w {
            WaitingInstall::Certificate => WaitingKind::InstallCertificate,
            WaitingInstall::Seal => WaitingKind::InstallSeal,
        };
        if !waiting.iter().any(|x| x.kind == kind) {
            waiting.push(Waiting {
                kind,
                business_id: None,
            });
        }
    }
    waiting.sort_by_key(|w| w.kind);
    Ok(Standing {
        state: if public.awaiting_activation {
            KeyState::AwaitingActivation
        } else {
            KeyState::Active
        },
        waiting,
    })
}

/// The businesses that wait for the operator, one per kind (the newest), most urgent first.
pub fn collect_waiting(businesses: &[Business]) -> Vec<Waiting> {
    let mut newest: Vec<&Business> = businesses.iter().collect();
    newest.sort_by_key(|b| std::cmp::Reverse(b.updated_at));
    let mut out: Vec<Waiting> = Vec::new();
    for b in newest {
        if let Some(kind) = waiting_for(b)
            && !out.iter().any(|w| w.kind == kind)
        {
            out.push(Waiting {
                kind,
                business_id: Some(b.id.clone()),
            });
        }
    }
    out.sort_by_key(|w| w.kind);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::{Duration, OffsetDateTime};

    fn business(id: &str, kind: BusinessKind, state: BusinessState, age_days: i64) -> Business {
        let at = OffsetDateTime::UNIX_EPOCH + Duration::days(1000 - age_days);
        Business {
            id: id.into(),
            kind,
            state,
            key_serial: Some("K1".into()),
            uscc: "91440101MA5DM00032".into(),
            fee_fen: 0,
            created_at: at,
            updated_at: at,
            timeline: Vec::new(),
        }
    }

    #[test]
    fn only_businesses_left_to_the_client_wait_and_the_newest_of_a_kind_counts() {
        use BusinessKind as K;
        use BusinessState as S;
        let list = [
            business("issue", K::Issue, S::Completed, 400),
            business("old-renewal", K::Renewal, S::Cancelled, 50),
            business("renewal", K::Renewal, S::Paid, 2),
            business("older-renewal", K::Renewal, S::CertificateIssued, 30),
            business("seal", K::Seal, S::CertificateIssued, 1),
            business("seal-review", K::Seal, S::UnderReview, 40),
            business("unlock", K::Unlock, S::UnderReview, 3),
        ];
        let w = collect_waiting(&list);
        assert_eq!(
            w,
            vec![
                Waiting {
                    kind: WaitingKind::InstallCertificate,
                    business_id: Some("renewal".into())
                },
                Waiting {
                    kind: WaitingKind::InstallSeal,
                    business_id: Some("seal".into())
                },
            ]
        );
        let unlock = [business("u", K::Unlock, S::Authorised, 0)];
        assert_eq!(collect_waiting(&unlock)[0].kind, WaitingKind::FinishUnlock);
        let unpaid = [business("r", K::Renewal, S::AwaitingPayment, 0)];
        assert_eq!(collect_waiting(&unpaid)[0].kind, WaitingKind::PayRenewal);
        assert!(collect_waiting(&[business("s", K::Seal, S::Rejected, 0)]).is_empty());
    }
}
