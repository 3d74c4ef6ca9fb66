use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id. The message names the expected format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "invalid merchant id {0:?}: expected two upper-case letters and 8 digits, like ON00004652"
    )]
    Merchant(String),
    #[error("invalid operator id {0:?}: expected 10 digits, like 0000000696")]
    Operator(String),
    #[error(
        "invalid shop id {0:?}: expected a merchant id followed by 3 digits, like ON00004652001"
    )]
    Shop(String),
    #[error("invalid terminal number {0:?}: expected 1 to 32 letters, digits, '-', '_' or '.'")]
    Terminal(String),
    #[error("invalid merchant id prefix {0:?}: expected two upper-case letters, like ON")]
    MerchantPrefix(String),
    #[error("number {0} does not fit the id format")]
    OutOfRange(u64),
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// An OTTPAY merchant id: two upper-case letters (a region code) and 8 digits, `ON00004652`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerchantId(String);

impl MerchantId {
    pub const MAX_NUMBER: u64 = 99_999_999;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = s.len() == 10
            && s.bytes().take(2).all(|b| b.is_ascii_uppercase())
            && all_digits(&s[2..]);
        if ok {
            Ok(MerchantId(s.to_owned()))
        } else {
            Err(IdError::Merchant(s.to_owned()))
        }
    }

    /// Builds the id for `prefix` (two upper-case letters) and a number up to [`Self::MAX_NUMBER`].
    pub fn from_parts(prefix: &str, number: u64) -> Result<Self, IdError> {
        if prefix.len() != 2 || !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(IdError::MerchantPrefix(prefix.to_owned()));
        }
        if number > Self::MAX_NUMBER {
            return Err(IdError::OutOfRange(number));
        }
        Ok(MerchantId(format!("{prefix}{number:08}")))
    }

    pub fn prefix(&self) -> &str {
        &self.0[..2]
    }

    /// The 8-digit number after the prefix.
    pub fn number(&self) -> u64 {
        // The constructor guarantees 8 ASCII digits, which always fit a u64.
        self.0[2..]
            .bytes()
            .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A 10-digit, zero-padded operator id, unique within its merchant (`0000000696`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperatorId(String);

impl OperatorId {
    pub const MAX_NUMBER: u64 = 9_999_999_999;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.len() == 10 && all_digits(s) {
            Ok(OperatorId(s.to_owned()))
        } else {
            Err(IdError::Operator(s.to_owned()))
        }
    }

    pub fn from_number(number: u64) -> Result<Self, IdError> {
        if number > Self::MAX_NUMBER {
            return Err(IdError::OutOfRange(number));
        }
        Ok(OperatorId(format!("{number:010}")))
    }

    pub fn number(&self) -> u64 {
        self.0.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A shop (store) of a merchant: the merchant id followed by a 3-digit suffix, `ON00004652001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShopId(String);

impl ShopId {
    pub const MAX_NUMBER: u64 = 999;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = s.len() == 13
            && s.is_ascii()
            && MerchantId::parse(&s[..10]).is_ok()
            && all_digits(&s[10..]);
        if ok {
            Ok(ShopId(s.to_owned()))
        } else {
            Err(IdError::Shop(s.to_owned()))
        }
    }

    pub fn new(merchant: &MerchantId, number: u64) -> Result<Self, IdError> {
        if number == 0 || number > Self::MAX_NUMBER {
            return Err(IdError::OutOfRange(number));
        }
        Ok(ShopId(format!("{}{number:03}", merchant.as_str())))
    }

    pub fn merchant_id(&self) -> MerchantId {
        MerchantId(self.0[..10].to_owned())
    }

    pub fn number(&self) -> u64 {
        self.0[10..]
            .bytes()
            .fold(0, |n, b| n * 10 + u64::from(b - b'0'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A POS terminal's number as the POS sends it in `terminal_no`; unique within its merchant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalNo(String);

impl TerminalNo {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(TerminalNo(s.to_owned()))
        } else {
            Err(IdError::Terminal(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_id_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

string_id_impls!(MerchantId, OperatorId, ShopId, TerminalNo);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merchant_ids_follow_the_ottpay_shape() {
        assert!(MerchantId::parse("ON00004652").is_ok());
        assert!(MerchantId::parse("QC00005496").is_ok());
        for bad in [
            "on00004652",
            "ON0000465",
            "ON000046521",
            "O100004652",
            "ON0000465A",
            "",
        ] {
            assert!(MerchantId::parse(bad).is_err(), "{bad}");
        }
        let id = MerchantId::from_parts("QG", 42).unwrap();
        assert_eq!(id.as_str(), "QG00000042");
        assert_eq!(id.number(), 42);
        assert_eq!(id.prefix(), "QG");
        assert!(MerchantId::from_parts("qg", 1).is_err());
        assert!(MerchantId::from_parts("QG", 100_000_000).is_err());
    }

    #[test]
    fn operator_ids_are_ten_digits() {
        assert_eq!(OperatorId::from_number(696).unwrap().as_str(), "0000000696");
        assert!(OperatorId::parse("000000069").is_err());
        assert!(OperatorId::parse("00000006a6").is_err());
        assert!(OperatorId::from_number(10_000_000_000).is_err());
    }

    #[test]
    fn shop_ids_extend_the_merchant_id() {
        let m = MerchantId::parse("ON00004652").unwrap();
        let shop = ShopId::new(&m, 1).unwrap();
        assert_eq!(shop.as_str(), "ON00004652001");
        assert_eq!(shop.merchant_id(), m);
        assert_eq!(ShopId::parse("ON00004652001").unwrap(), shop);
        assert!(ShopId::new(&m, 0).is_err());
        assert!(ShopId::parse("ON0000465200").is_err());
    }

    #[test]
    fn terminal_numbers_are_short_and_plain() {
        assert!(TerminalNo::parse("POS-01.a_b").is_ok());
        assert!(TerminalNo::parse("").is_err());
        assert!(TerminalNo::parse("a b").is_err());
        assert!(TerminalNo::parse(&"x".repeat(33)).is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,16}") {
            let _ = MerchantId::parse(&s);
            let _ = OperatorId::parse(&s);
            let _ = ShopId::parse(&s);
            let _ = TerminalNo::parse(&s);
        }

        #[test]
        fn generated_ids_parse_back(prefix in "[A-Z]{2}", n in 0u64..=99_999_999) {
            let id = MerchantId::from_parts(&prefix, n).unwrap();
            prop_assert_eq!(MerchantId::parse(id.as_str()).unwrap().number(), n);
        }
    }
}
