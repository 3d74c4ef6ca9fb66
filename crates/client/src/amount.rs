//! Amounts as people type and read them ("12.34"), converted to and from [`Cents`] without
//! floating point.

use qrgate_ottpay::Cents;

/// Why a typed amount was not accepted by [`parse_amount`].
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum AmountError {
    /// Nothing was typed.
    #[error("no amount given")]
    Empty,
    /// A character other than digits and one decimal point, e.g. a sign, a comma or a
    /// currency symbol.
    #[error("an amount is digits with an optional decimal point, e.g. 12.34")]
    NotDecimal,
    /// More than two digits after the decimal point.
    #[error("at most 2 digits after the decimal point")]
    TooPrecise,
    /// More than the gateway accepts (18 digits of cents).
    #[error("the amount is too large")]
    TooLarge,
}

/// The largest amount the wire form holds: 18 digits of cents.
const MAX_CENTS: u64 = 999_999_999_999_999_999;

/// Parses an amount in major units with at most two decimals: `"12.34"` is 1234 cents,
/// `"12"`, `"12.3"`, `"12.30"` and `"0.5"` are accepted, as is surrounding whitespace.
/// Signs, thousands separators, commas and exponents are refused. Zero is accepted (a tip
/// may be zero); whether it makes sense is the caller's decision.
pub fn parse_amount(text: &str) -> Result<Cents, AmountError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (text, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) {
        return Err(AmountError::NotDecimal);
    }
    let fraction = fraction.unwrap_or("");
    if !digits(fraction) {
        return Err(AmountError::NotDecimal);
    }
    if text.ends_with('.') {
        return Err(AmountError::NotDecimal);
    }
    if fraction.len() > 2 {
        return Err(AmountError::TooPrecise);
    }
    let mut cents: u64 = 0;
    let fraction_digits = fraction.bytes().chain(std::iter::repeat(b'0')).take(2);
    for b in whole.bytes().chain(fraction_digits) {
        cents = cents
            .checked_mul(10)
            .and_then(|c| c.checked_add(u64::from(b - b'0')))
            .ok_or(AmountError::TooLarge)?;
    }
    if cents > MAX_CENTS {
        return Err(AmountError::TooLarge);
    }
    Ok(Cents(cents))
}

/// Formats cents in major units with two decimals: 1234 is `"12.34"`, 5 is `"0.05"`.
pub fn format_amount(amount: Cents) -> String {
    format!("{}.{:02}", amount.0 / 100, amount.0 % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_without_floats() {
        for (text, cents) in [
            ("12.34", 1234),
            ("12", 1200),
            ("12.3", 1230),
            ("12.30", 1230),
            ("0.5", 50),
            ("0.05", 5),
            ("0", 0),
            (" 7.10\n", 710),
            ("007.01", 701),
            ("0.29", 29), // 0.29 * 100 is 28.999999999999996 in f64
            ("9999999999999999.99", 999_999_999_999_999_999),
        ] {
            assert_eq!(parse_amount(text), Ok(Cents(cents)), "{text:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_amount() {
        for (text, err) in [
            ("", AmountError::Empty),
            ("  ", AmountError::Empty),
            ("12.345", AmountError::TooPrecise),
            ("1.000", AmountError::TooPrecise),
            ("-1", AmountError::NotDecimal),
            ("+1", AmountError::NotDecimal),
            ("1,50", AmountError::NotDecimal),
            ("1,000.00", AmountError::NotDecimal),
            ("$5", AmountError::NotDecimal),
            ("1e3", AmountError::NotDecimal),
            (".5", AmountError::NotDecimal),
            ("5.", AmountError::NotDecimal),
            ("1.2.3", AmountError::NotDecimal),
            ("1 2", AmountError::NotDecimal),
            ("١٢", AmountError::NotDecimal),
            ("10000000000000000", AmountError::TooLarge),
            ("99999999999999999999999", AmountError::TooLarge),
        ] {
            assert_eq!(parse_amount(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn formats_two_decimals() {
        assert_eq!(format_amount(Cents(1234)), "12.34");
        assert_eq!(format_amount(Cents(5)), "0.05");
        assert_eq!(format_amount(Cents(0)), "0.00");
        assert_eq!(format_amount(Cents(100)), "1.00");
        for text in ["0.01", "12.34", "1000.00"] {
            assert_eq!(format_amount(parse_amount(text).unwrap()), text);
        }
    }
}
