use std::fmt;
use std::str::FromStr;

/// A currency a merchant can price in, or that a customer pays in.
///
/// OTTPAY merchants price in CAD or USD; wallet customers pay in CNY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    Cad,
    Usd,
    Cny,
}

impl Currency {
    pub const ALL: [Currency; 3] = [Currency::Cad, Currency::Usd, Currency::Cny];

    /// The ISO 4217 code.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Cad => "CAD",
            Currency::Usd => "USD",
            Currency::Cny => "CNY",
        }
    }

    /// Number of minor units in one major unit (all supported currencies have two decimals).
    pub fn minor_units_per_major(self) -> i64 {
        match self {
            Currency::Cad | Currency::Usd | Currency::Cny => 100,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported currency {0:?}: expected one of CAD, USD, CNY")]
pub struct CurrencyParseError(pub String);

impl FromStr for Currency {
    type Err = CurrencyParseError;

    /// Parses an ISO code; case-sensitive, as on the wire.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| CurrencyParseError(s.to_owned()))
    }
}

/// An amount of money: integer minor units (cents, fen) of one currency. Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub fn minor(self) -> i64 {
        self.minor
    }

    pub fn currency(self) -> Currency {
        self.currency
    }

    /// Adds two amounts of the same currency; `None` on currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
    }
}

/// Why a typed amount is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    #[error("no amount given")]
    Empty,
    #[error("an amount is digits with at most one decimal point, like 12.50")]
    NotANumber,
    #[error("an amount in {0} has at most 2 decimals")]
    TooManyDecimals(Currency),
    #[error("the amount is too large")]
    TooLarge,
}

impl Money {
    /// Parses an amount typed in major units (`12`, `12.5`, `12.50`) in `currency`: digits, at
    /// most one decimal point and at most as many decimals as the currency has. A third
    /// decimal is refused, never rounded; so are signs, exponents and separators.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Money, AmountParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AmountParseError::Empty);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(AmountParseError::NotANumber);
        }
        let per = currency.minor_units_per_major();
        let decimals = per.to_string().len() - 1;
        if fraction.len() > decimals {
            return Err(AmountParseError::TooManyDecimals(currency));
        }
        if whole.len() > 15 {
            return Err(AmountParseError::TooLarge);
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| AmountParseError::TooLarge)?
        };
        let mut frac: i64 = 0;
        for b in fraction
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(decimals)
        {
            frac = frac * 10 + i64::from(b - b'0');
        }
        whole
            .checked_mul(per)
            .and_then(|m| m.checked_add(frac))
            .map(|minor| Money::new(minor, currency))
            .ok_or(AmountParseError::TooLarge)
    }
}

impl fmt::Display for Money {
    /// `12.34 CAD`; negative amounts keep their sign.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = self.currency.minor_units_per_major();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let per = per.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / per, abs % per, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_parse_from_their_codes_only() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert!("cad".parse::<Currency>().is_err());
        assert!("EUR".parse::<Currency>().is_err());
    }

    #[test]
    fn money_displays_in_major_units() {
        assert_eq!(Money::new(1234, Currency::Cad).to_string(), "12.34 CAD");
        assert_eq!(Money::new(5, Currency::Cny).to_string(), "0.05 CNY");
        assert_eq!(Money::new(-105, Currency::Usd).to_string(), "-1.05 USD");
    }

    #[test]
    fn typed_amounts_parse_to_minor_units_and_a_third_decimal_is_refused() {
        let cad = Currency::Cad;
        assert_eq!(Money::parse_major("12", cad), Ok(Money::new(1200, cad)));
        assert_eq!(Money::parse_major(" 12.5 ", cad), Ok(Money::new(1250, cad)));
        assert_eq!(Money::parse_major("0.07", cad), Ok(Money::new(7, cad)));
        assert_eq!(Money::parse_major(".5", cad), Ok(Money::new(50, cad)));
        assert_eq!(
            Money::parse_major("12.345", cad),
            Err(AmountParseError::TooManyDecimals(cad))
        );
        for bad in ["abc", "-1", "1e3", "1,000", "1.2.3", ".", "+5"] {
            assert_eq!(
                Money::parse_major(bad, cad),
                Err(AmountParseError::NotANumber),
                "{bad}"
            );
        }
        assert_eq!(Money::parse_major("", cad), Err(AmountParseError::Empty));
        assert_eq!(
            Money::parse_major("99999999999999999999", cad),
            Err(AmountParseError::TooLarge)
        );
    }

    #[test]
    fn adding_different_currencies_is_refused() {
        let cad = Money::new(1, Currency::Cad);
        assert_eq!(cad.checked_add(Money::new(1, Currency::Usd)), None);
        assert_eq!(cad.checked_add(cad), Some(Money::new(2, Currency::Cad)));
        assert_eq!(Money::new(i64::MAX, Currency::Cad).checked_add(cad), None);
    }
}
