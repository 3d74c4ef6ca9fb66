use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::{Currency, MerchantId, OperatorId, ShopId, TerminalNo};

/// Whether a merchant may take payments. A disabled merchant's POS calls are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MerchantStatus {
    Active,
    Disabled,
}

impl MerchantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MerchantStatus::Active => "active",
            MerchantStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(MerchantStatus::Active),
            "disabled" => Some(MerchantStatus::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for MerchantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The IANA time zone a merchant's receipts and reports use (`America/Toronto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MerchantTimeZone(chrono_tz::Tz);

impl MerchantTimeZone {
    /// OTTPAY's documented wire behaviour uses Beijing time (`ottpay.md` §11.12).
    pub const DEFAULT: MerchantTimeZone = MerchantTimeZone(chrono_tz::Asia::Shanghai);

    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// `at` as OTTPAY writes times on the wire: `yyyyMMddHHmmss` in this zone.
    pub fn wire_time(self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.0).format("%Y%m%d%H%M%S").to_string()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: expected an IANA name like America/Toronto")]
pub struct TimeZoneParseError(pub String);

impl FromStr for MerchantTimeZone {
    type Err = TimeZoneParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<chrono_tz::Tz>()
            .map(MerchantTimeZone)
            .map_err(|_| TimeZoneParseError(s.to_owned()))
    }
}

impl fmt::Display for MerchantTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A merchant as the provider onboarded it. Its sign key is not here: keys live encrypted in
/// the store and are only handed out by the engine's key ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    /// The currency its POS prices in; OTTPAY retail requests carry none (`ottpay.md` §2).
    pub currency: Currency,
    pub time_zone: MerchantTimeZone,
    pub status: MerchantStatus,
    /// The provider's fee on its payments.
    pub fee_rate: crate::FeeRate,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A store of a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shop {
    pub id: ShopId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Whether an operator may sign in to the web till. A disabled operator's sessions end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorStatus {
    Active,
    Disabled,
}

impl OperatorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorStatus::Active => "active",
            OperatorStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(OperatorStatus::Active),
            "disabled" => Some(OperatorStatus::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for OperatorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person at the till, identified by a 10-digit id within the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub merchant_id: MerchantId,
    pub id: OperatorId,
    pub name: String,
    pub status: OperatorStatus,
    pub created_at: DateTime<Utc>,
}

/// What an operator may do on the till beyond selling: a supervisor approves refunds with
/// their PIN (docs/TILL.md, "Refunds").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRole {
    Cashier,
    Supervisor,
}

impl OperatorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Cashier => "cashier",
            OperatorRole::Supervisor => "supervisor",
        }
    }

    pub fn parse(s: &str) -> Option<OperatorRole> {
        match s {
            "cashier" => Some(OperatorRole::Cashier),
            "supervisor" => Some(OperatorRole::Supervisor),
            _ => None,
        }
    }
}

/// A POS terminal of a merchant, optionally placed in a shop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub merchant_id: MerchantId,
    pub terminal_no: TerminalNo,
    pub shop_id: Option<ShopId>,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Checks a display name (merchant, shop, operator, terminal): 1 to 100 characters, no
/// control characters, not only spaces. Returns the name trimmed.
pub fn validate_name(name: &str) -> Result<String, NameError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    if trimmed.chars().count() > 100 {
        return Err(NameError::TooLong);
    }
    if trimmed.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than 100 characters")]
    TooLong,
    #[error("name contains a control character")]
    ControlCharacter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones_are_iana_names() {
        let tz: MerchantTimeZone = "America/Toronto".parse().unwrap();
        assert_eq!(tz.name(), "America/Toronto");
        assert!("Mars/Olympus".parse::<MerchantTimeZone>().is_err());
        assert_eq!(MerchantTimeZone::DEFAULT.name(), "Asia/Shanghai");
    }

    #[test]
    fn wire_times_are_local_to_the_zone() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(MerchantTimeZone::DEFAULT.wire_time(at), "20260102110405");
        let toronto: MerchantTimeZone = "America/Toronto".parse().unwrap();
        assert_eq!(toronto.wire_time(at), "20260101220405");
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Maple Tea  ").unwrap(), "Maple Tea");
        assert_eq!(validate_name("   "), Err(NameError::Empty));
        assert_eq!(validate_name(&"x".repeat(101)), Err(NameError::TooLong));
        assert_eq!(validate_name("a\u{7}b"), Err(NameError::ControlCharacter));
        assert!(validate_name("枫叶茶馆").is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for s in [MerchantStatus::Active, MerchantStatus::Disabled] {
            assert_eq!(MerchantStatus::parse(s.as_str()), Some(s));
        }
    }
}
