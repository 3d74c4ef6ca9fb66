//! Reconciliation's vocabulary: the kinds of difference between a wallet's bill and our
//! records, their states, and which bill day a moment belongs to (docs/RECONCILIATION.md).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};

use crate::Wallet;

/// A kind of difference between a bill and our records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BreakKind {
    /// We have a paid order or a succeeded refund that no bill lists within the hold window.
    MissingAtWallet,
    /// The bill lists a payment or refund with a number we never made.
    MissingAtOurs,
    /// Both have it, for different amounts.
    Amount,
    /// Both have it, in different states (paid in the bill, closed or reversed at ours, or the
    /// reverse).
    Status,
    /// The wallet's fee is not the one its rate gives.
    Fee,
    /// Both have it, in different currencies.
    Currency,
    /// The bill's own summary disagrees with its lines.
    Totals,
}

impl BreakKind {
    pub const ALL: [BreakKind; 7] = [
        BreakKind::MissingAtWallet,
        BreakKind::MissingAtOurs,
        BreakKind::Amount,
        BreakKind::Status,
        BreakKind::Fee,
        BreakKind::Currency,
        BreakKind::Totals,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::MissingAtWallet => "missing_at_wallet",
            BreakKind::MissingAtOurs => "missing_at_ours",
            BreakKind::Amount => "amount",
            BreakKind::Status => "status",
            BreakKind::Fee => "fee",
            BreakKind::Currency => "currency",
            BreakKind::Totals => "totals",
        }
    }

    pub fn parse(s: &str) -> Option<BreakKind> {
        BreakKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a break stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakStatus {
    /// Waits for a person.
    Open,
    /// The gateway settled it by itself (its note says how).
    Worked,
    /// A person accepted it, with a note.
    Resolved,
}

impl BreakStatus {
    pub const ALL: [BreakStatus; 3] = [
        BreakStatus::Open,
        BreakStatus::Worked,
        BreakStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakStatus::Open => "open",
            BreakStatus::Worked => "worked",
            BreakStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<BreakStatus> {
        BreakStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Beijing time, in which every wallet dates its bills.
fn beijing() -> FixedOffset {
    // 8 hours east is in range for a fixed offset: `east_opt` fails only beyond ±24 h.
    #[allow(clippy::unwrap_used)]
    FixedOffset::east_opt(8 * 3600).unwrap()
}

/// The wallet's bill day that a moment belongs to: the Beijing calendar day for WeChat Pay and
/// Alipay; for UnionPay the settle date, whose day ends at 23:00 Beijing time.
pub fn bill_day(wallet: Wallet, at: DateTime<Utc>) -> NaiveDate {
    let local = at.with_timezone(&beijing());
    match wallet {
        Wallet::UnionPay => (local + Duration::hours(1)).date_naive(),
        Wallet::WechatPay | Wallet::Alipay => local.date_naive(),
    }
}

/// The first moment of a bill day (see [`bill_day`]).
pub fn bill_day_start(wallet: Wallet, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(chrono::NaiveTime::MIN);
    let start_local = match wallet {
        Wallet::UnionPay => midnight - Duration::hours(1),
        Wallet::WechatPay | Wallet::Alipay => midnight,
    };
    // Beijing midnight is 16:00 UTC the day before.
    (start_local - Duration::hours(8)).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bill_days_follow_beijing_time_and_unionpays_cut_off() {
        // 15:30 UTC = 23:30 Beijing on the 26th.
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 15, 30, 0).unwrap();
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(bill_day(Wallet::WechatPay, late), d(2026, 11, 26));
        assert_eq!(bill_day(Wallet::Alipay, late), d(2026, 11, 26));
        assert_eq!(bill_day(Wallet::UnionPay, late), d(2026, 11, 27));
        // 16:00 UTC = midnight Beijing.
        let midnight = Utc.with_ymd_and_hms(2026, 11, 26, 16, 0, 0).unwrap();
        assert_eq!(bill_day(Wallet::WechatPay, midnight), d(2026, 11, 27));
        for w in Wallet::ALL {
            let start = bill_day_start(w, d(2026, 11, 27));
            assert_eq!(bill_day(w, start), d(2026, 11, 27));
            assert_eq!(
                bill_day(w, start - Duration::milliseconds(1)),
                d(2026, 11, 26)
            );
        }
    }

    #[test]
    fn kinds_and_states_round_trip() {
        for k in BreakKind::ALL {
            assert_eq!(BreakKind::parse(k.as_str()), Some(k));
        }
        for s in BreakStatus::ALL {
            assert_eq!(BreakStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(BreakKind::parse("other"), None);
    }
}
