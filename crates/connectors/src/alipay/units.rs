//! Conversions between qrgate's units and Alipay's: money as two-decimal major-unit strings,
//! rates as decimal strings (held ×10^8), times as Beijing-time `yyyy-MM-dd HH:mm:ss`, and
//! QR lifetimes as `timeout_express` minutes. Integer arithmetic only; parsing is strict, so a
//! value we cannot read exactly is refused instead of rounded.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use qrgate_connector_api::ConnectorError;
use qrgate_domain::{Currency, Money};

/// Alipay's gateway works in Beijing time (GMT+8) for `timestamp` and all reply times.
const BEIJING: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    // Evaluated at compile time: a bad constant fails the build, never a running gateway.
    None => panic!("UTC+8 is a valid offset"),
};
const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Alipay amounts are major units with exactly two decimals.
const MINOR_PER_MAJOR: i64 = 100;
/// `0.01` to `100000000.00`, the documented range of `total_amount` and `refund_amount`.
const AMOUNT_MIN_MINOR: i64 = 1;
const AMOUNT_MAX_MINOR: i64 = 10_000_000_000;
/// Longest integer part accepted when parsing, so the arithmetic cannot overflow.
const AMOUNT_MAX_INT_DIGITS: usize = 15;

/// `trans_pay_rate` is carried ×10^8, like every rate in qrgate.
const RATE_DECIMALS: usize = 8;
const RATE_SCALE: i64 = 100_000_000;
const RATE_MAX_INT_DIGITS: usize = 10;

/// `timeout_express` accepts 1m to 15d; we always express it in minutes.
const TIMEOUT_MIN_MINUTES: i64 = 1;
const TIMEOUT_MAX_MINUTES: i64 = 15 * 24 * 60;

/// Formats an amount as Alipay wants it (`12.34`), refusing amounts outside 0.01–100000000.00.
pub(super) fn amount_to_alipay(money: Money) -> Result<String, ConnectorError> {
    if money.currency().minor_units_per_major() != MINOR_PER_MAJOR {
        return Err(ConnectorError::NotSupported(
            "Alipay amounts have two decimals; this currency has a different exponent",
        ));
    }
    let minor = money.minor();
    if !(AMOUNT_MIN_MINOR..=AMOUNT_MAX_MINOR).contains(&minor) {
        return Err(ConnectorError::Rejected {
            code: "INVALID_AMOUNT".into(),
            message: format!("{money} is outside Alipay's range 0.01 to 100000000.00"),
        });
    }
    Ok(format!(
        "{}.{:02}",
        minor / MINOR_PER_MAJOR,
        minor % MINOR_PER_MAJOR
    ))
}

/// Parses an Alipay amount strictly: digits, a dot, exactly two digits; no sign, no exponent,
/// no leading zeros. `None` for anything else.
pub(super) fn amount_from_alipay(text: &str, currency: Currency) -> Option<Money> {
    let (int, frac) = text.split_once('.')?;
    let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(int) || !is_digits(frac) || frac.len() != 2 || int.len() > AMOUNT_MAX_INT_DIGITS {
        return None;
    }
    if int.len() > 1 && int.starts_with('0') {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac: i64 = frac.parse().ok()?;
    int.checked_mul(MINOR_PER_MAJOR)?
        .checked_add(frac)
        .map(|minor| Money::new(minor, currency))
}

/// Parses a positive decimal rate (`trans_pay_rate`) into an integer ×10^8 without floats.
/// Digits beyond the eighth decimal are accepted only when they are zeros, so the value is
/// never silently rounded.
pub(super) fn rate_e8_from_alipay(text: &str) -> Option<i64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > RATE_MAX_INT_DIGITS || !digits(int) || !digits(frac) {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let (kept, dropped) = frac.split_at(frac.len().min(RATE_DECIMALS));
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac: i64 = format!("{kept:0<width$}", width = RATE_DECIMALS)
        .parse()
        .ok()?;
    let scaled = int.checked_mul(RATE_SCALE)?.checked_add(frac)?;
    (scaled > 0).then_some(scaled)
}

/// The `timestamp` parameter: `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub(super) fn alipay_timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&BEIJING)
        .format(TIMESTAMP_FORMAT)
        .to_string()
}

/// Parses a Beijing-time `yyyy-MM-dd HH:mm:ss` from a reply (`gmt_payment`, `send_pay_date`).
pub(super) fn parse_alipay_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text, TIMESTAMP_FORMAT).ok()?;
    naive
        .and_local_timezone(BEIJING)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A `timeout_express` value (`Nm`) for a QR that must stop being payable at `expires_at`.
///
/// Rounded down to whole minutes so Alipay never accepts payment after our deadline, except
/// that Alipay's minimum is one minute: a deadline closer than that is sent as `1m` and the
/// engine's own close settles the difference. A deadline already passed is a caller bug.
pub(super) fn timeout_express(
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<String, ConnectorError> {
    let seconds = expires_at.signed_duration_since(now).num_seconds();
    if seconds <= 0 {
        return Err(ConnectorError::Rejected {
            code: "EXPIRES_AT_PASSED".into(),
            message: "the QR order's expires_at is not in the future".into(),
        });
    }
    let minutes = (seconds / 60).clamp(TIMEOUT_MIN_MINUTES, TIMEOUT_MAX_MINUTES);
    Ok(format!("{minutes}m"))
}
