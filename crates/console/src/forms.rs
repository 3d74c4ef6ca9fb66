//! Reading what people type: every field arrives as text and is parsed here, so that a
//! wrong type, an empty field or an amount with three decimals gets a clear message (and
//! nothing is changed) rather than an extractor's rejection.

use chrono::NaiveDate;
use qrgate_domain::{AmountParseError, Currency, Money};
use qrgate_engine::ConsoleError;

use crate::i18n::Lang;

/// The longest text any field may hold.
pub const MAX_FIELD_CHARS: usize = 200;

/// A field's text, trimmed; `None` when empty. Over [`MAX_FIELD_CHARS`] is refused.
pub fn text(l: Lang, field: &str, value: &str) -> Result<Option<String>, ConsoleError> {
    let v = value.trim();
    if v.chars().count() > MAX_FIELD_CHARS {
        return Err(ConsoleError::Invalid(l.ta(
            "field-too-long",
            &[
                ("field", field.to_owned()),
                ("max", MAX_FIELD_CHARS.to_string()),
            ],
        )));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// A field that must be given.
pub fn required(l: Lang, field: &str, value: &str) -> Result<String, ConsoleError> {
    text(l, field, value)?.ok_or_else(|| {
        ConsoleError::Invalid(l.ta("field-required", &[("field", field.to_owned())]))
    })
}

/// An amount in `currency`, typed in major units.
pub fn amount(
    l: Lang,
    field: &str,
    value: &str,
    currency: Currency,
) -> Result<Money, ConsoleError> {
    Money::parse_major(value, currency).map_err(|e| {
        let why = match e {
            AmountParseError::Empty => l.ta("field-required", &[("field", field.to_owned())]),
            AmountParseError::NotANumber => {
                l.ta("amount-not-a-number", &[("field", field.to_owned())])
            }
            AmountParseError::TooManyDecimals(c) => l.ta(
                "amount-decimals",
                &[("field", field.to_owned()), ("currency", c.to_string())],
            ),
            AmountParseError::TooLarge => l.ta("amount-too-large", &[("field", field.to_owned())]),
        };
        ConsoleError::Invalid(why)
    })
}

/// An optional amount.
pub fn opt_amount(
    l: Lang,
    field: &str,
    value: &str,
    currency: Currency,
) -> Result<Option<Money>, ConsoleError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    amount(l, field, value, currency).map(Some)
}

/// A day typed as `YYYY-MM-DD`.
pub fn opt_date(l: Lang, field: &str, value: &str) -> Result<Option<NaiveDate>, ConsoleError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| ConsoleError::Invalid(l.ta("date-invalid", &[("field", field.to_owned())])))
}

/// A value parsed by `parse`, or the field's "invalid" message.
pub fn parsed<T, E>(
    l: Lang,
    field: &str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ConsoleError> {
    match text(l, field, value)? {
        None => Ok(None),
        Some(v) => parse(&v).map(Some).map_err(|_| {
            ConsoleError::Invalid(l.ta("field-invalid", &[("field", field.to_owned())]))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_decimals_are_refused_with_a_message_naming_the_field() {
        let e = amount(Lang::En, "Amount", "12.345", Currency::Cad).unwrap_err();
        assert!(e.to_string().contains("Amount"), "{e}");
        assert!(e.to_string().contains("2"), "{e}");
        assert_eq!(
            amount(Lang::En, "Amount", "12.34", Currency::Cad).unwrap(),
            Money::new(1234, Currency::Cad)
        );
        assert!(amount(Lang::En, "Amount", "", Currency::Cad).is_err());
        assert!(amount(Lang::En, "Amount", "ten", Currency::Cad).is_err());
    }

    #[test]
    fn long_text_is_refused_and_empty_text_is_none() {
        assert!(text(Lang::En, "Name", &"x".repeat(201)).is_err());
        assert_eq!(text(Lang::En, "Name", "  ").unwrap(), None);
        assert!(required(Lang::En, "Name", " ").is_err());
    }
}
