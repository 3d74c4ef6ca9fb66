//! Wire enumerations: response codes (§8), actions (§5) and the string-enum helper.

/// The string given to a `FromStr` of a wire enumeration is not one of its values.
///
/// The offending value is deliberately not part of the message (it may contain
/// characters unfit for an `rsp_msg`).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("unknown {kind} value")]
pub struct UnknownName {
    /// Which enumeration was being parsed, e.g. `"rsp_code"`.
    pub kind: &'static str,
}

/// Defines a fieldless enum with a fixed wire spelling per variant:
/// `ALL`, `as_str`, `parse`, `Display` and `FromStr`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$(stringify!($variant)),+].len()] = [$(Self::$variant),+];

            /// The exact wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// Parses the exact wire spelling (case-sensitive, no trimming).
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::codes::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or($crate::codes::UnknownName { kind: $kind })
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Response codes (`rsp_code`, Appendix B / §8).
    pub enum RspCode ("rsp_code") {
        /// `SUCCESS`
        Success => "SUCCESS",
        /// `PROCESSING`: still being processed (e.g. buyer entering a wallet password).
        Processing => "PROCESSING",
        /// `PWD_INCORRECT`
        PwdIncorrect => "PWD_INCORRECT",
        /// `FAIL`: generic failure.
        Fail => "FAIL",
        /// `TIMEOUT`
        Timeout => "TIMEOUT",
        /// `SYSTEM_ERROR`
        SystemError => "SYSTEM_ERROR",
        /// `PARAM_INVALID`: invalid parameter.
        ParamInvalid => "PARAM_INVALID",
        /// `PARAM_ERROR`: parameter format error.
        ParamError => "PARAM_ERROR",
        /// `ORDER_PAID`: order already paid.
        OrderPaid => "ORDER_PAID",
        /// `ORDER_USED`: duplicate order number.
        OrderUsed => "ORDER_USED",
        /// `ORDER_TYPE_ERROR`: pre-authorised order, wrong type for the operation.
        OrderTypeError => "ORDER_TYPE_ERROR",
        /// `DB_ERROR`
        DbError => "DB_ERROR",
    }
}

impl RspCode {
    /// The message text of Appendix B for this code, verbatim (including the documented
    /// spelling `pre-authoried order` and trailing dots). Plain ASCII, no `+`/`%`.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Processing => "transaction processing",
            Self::PwdIncorrect => "password is incorrect",
            Self::Fail => "failure.",
            Self::Timeout => "timeout.",
            Self::SystemError => "system error.",
            Self::ParamInvalid => "invalid parameter",
            Self::ParamError => "parameter format error",
            Self::OrderPaid => "order paid",
            Self::OrderUsed => "order number duplicated",
            Self::OrderTypeError => "pre-authoried order",
            Self::DbError => "database error",
        }
    }

    /// True for `SUCCESS` and `PROCESSING`, the two codes clients do not treat as errors.
    pub const fn is_ok(self) -> bool {
        matches!(self, Self::Success | Self::Processing)
    }
}

wire_enum! {
    /// In-store (retail) actions (§5), the envelope's `action` field.
    pub enum Action ("action") {
        /// `ACTIVEPAY`: create an order and get the QR content (§5.1).
        ActivePay => "ACTIVEPAY",
        /// `PASSIVEPAY`: charge a scanned customer code (§5.2).
        PassivePay => "PASSIVEPAY",
        /// `STATUS_QUERY`: payment status query (§5.3).
        StatusQuery => "STATUS_QUERY",
        /// `REFUND` (§5.4).
        Refund => "REFUND",
        /// `REFUND_QUERY`: refund status query (§11.15, provisional).
        RefundQuery => "REFUND_QUERY",
        /// `EX_RATE_QUERY`: exchange rate (§5.6).
        ExRateQuery => "EX_RATE_QUERY",
    }
}

impl Action {
    /// The envelope `version` of this action: `"1.0"` for every retail action.
    pub const fn version(self) -> &'static str {
        "1.0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn rsp_code_round_trip() {
        assert_eq!(RspCode::ALL.len(), 12);
        for c in RspCode::ALL {
            assert_eq!(RspCode::parse(c.as_str()), Some(c));
            assert_eq!(RspCode::from_str(c.as_str()), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
            let m = c.default_message();
            assert!(m.is_ascii() && !m.contains('+') && !m.contains('%'));
        }
        assert_eq!(RspCode::parse("success"), None);
        assert_eq!(
            RspCode::from_str("NOPE"),
            Err(UnknownName { kind: "rsp_code" })
        );
        assert_eq!(
            RspCode::Processing.default_message(),
            "transaction processing"
        );
    }

    #[test]
    fn action_round_trip() {
        assert_eq!(Action::ALL.len(), 6);
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
            assert_eq!(a.version(), "1.0");
        }
        assert_eq!(Action::parse("EX_RATE_QUERY"), Some(Action::ExRateQuery));
        assert_eq!(Action::parse("H5PAY"), None);
    }
}
