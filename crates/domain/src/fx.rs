use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::Currency;

/// How many units of the rate's integer form make one: rates travel scaled by 10^8 (§5.6).
pub const FX_SCALE: i64 = 100_000_000;
const FX_DECIMALS: usize = 8;

/// An exchange rate to CNY: how many yuan one unit of the currency buys, as an integer scaled
/// by 10^8, exactly as OTTPAY sends it (6.5 is `650000000`). Always positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FxRate(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid exchange rate {0:?}: expected a positive decimal with at most 8 decimals, like 5.1234"
)]
pub struct FxRateParseError(pub String);

impl FxRate {
    /// The rate of CNY to itself.
    pub const ONE: FxRate = FxRate(FX_SCALE);

    /// From the scaled integer form; `None` unless positive.
    pub fn from_scaled(scaled: i64) -> Option<Self> {
        (scaled > 0).then_some(FxRate(scaled))
    }

    /// The integer form scaled by 10^8, as sent on the wire.
    pub fn scaled(self) -> i64 {
        self.0
    }
}

impl FromStr for FxRate {
    type Err = FxRateParseError;

    /// Parses a plain decimal such as `5.1234` without going through floating point.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || FxRateParseError(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits_only(int) || !digits_only(frac) || frac.len() > FX_DECIMALS {
            return Err(err());
        }
        if s.ends_with('.') {
            return Err(err());
        }
        let int: i64 = int.parse().map_err(|_| err())?;
        let padded = format!("{frac:0<width$}", width = FX_DECIMALS);
        let frac: i64 = padded.parse().map_err(|_| err())?;
        int.checked_mul(FX_SCALE)
            .and_then(|v| v.checked_add(frac))
            .and_then(FxRate::from_scaled)
            .ok_or_else(err)
    }
}

impl fmt::Display for FxRate {
    /// The plain decimal, trailing zeros removed (`5.1234`, `1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.0 / FX_SCALE;
        let frac = self.0 % FX_SCALE;
        if frac == 0 {
            return write!(f, "{int}");
        }
        let frac = format!("{frac:08}");
        write!(f, "{int}.{}", frac.trim_end_matches('0'))
    }
}

/// A rate as the gateway holds it: for which currency, from where, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FxQuote {
    pub currency: Currency,
    pub rate: FxRate,
    /// Who set it: `provider` for rates set with the CLI; wallets in later versions.
    pub source: String,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rates_parse_exactly() {
        assert_eq!("5.1234".parse::<FxRate>().unwrap().scaled(), 512_340_000);
        assert_eq!("6.5".parse::<FxRate>().unwrap().scaled(), 650_000_000);
        assert_eq!("1".parse::<FxRate>().unwrap(), FxRate::ONE);
        assert_eq!("0.00000001".parse::<FxRate>().unwrap().scaled(), 1);
        for bad in [
            "",
            "0",
            "0.0",
            "-1",
            "1.",
            ".5",
            "1.123456789",
            "1,5",
            "1e3",
            "abc",
            "99999999999999",
        ] {
            assert!(bad.parse::<FxRate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_display_as_plain_decimals() {
        assert_eq!(
            FxRate::from_scaled(512_340_000).unwrap().to_string(),
            "5.1234"
        );
        assert_eq!(FxRate::ONE.to_string(), "1");
        assert_eq!(FxRate::from_scaled(1).unwrap().to_string(), "0.00000001");
        assert_eq!(FxRate::from_scaled(0), None);
    }

    proptest! {
        #[test]
        fn display_parses_back(scaled in 1i64..=1_000_000_000_000) {
            let rate = FxRate::from_scaled(scaled).unwrap();
            prop_assert_eq!(rate.to_string().parse::<FxRate>().unwrap(), rate);
        }
    }
}
