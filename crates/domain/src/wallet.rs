use std::fmt;

/// A wallet the gateway takes payments with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Wallet {
    WechatPay,
    Alipay,
    UnionPay,
}

impl Wallet {
    pub const ALL: [Wallet; 3] = [Wallet::WechatPay, Wallet::Alipay, Wallet::UnionPay];

    /// The stored and logged name: `wechatpay`, `alipay`, `unionpay`.
    pub fn as_str(self) -> &'static str {
        match self {
            Wallet::WechatPay => "wechatpay",
            Wallet::Alipay => "alipay",
            Wallet::UnionPay => "unionpay",
        }
    }

    pub fn parse(s: &str) -> Option<Wallet> {
        Wallet::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// Which wallet issued a customer's payment code, by its format alone (`wallets.md` §4):
    /// WeChat 18 digits starting 10–15, Alipay 16–24 digits starting 25–30, UnionPay 19
    /// digits starting 62. The ranges are disjoint; anything else is `None` (never guessed).
    pub fn of_payment_code(code: &str) -> Option<Wallet> {
        let code = code.trim();
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u32 = code.get(..2)?.parse().ok()?;
        match (code.len(), prefix) {
            (18, 10..=15) => Some(Wallet::WechatPay),
            (16..=24, 25..=30) => Some(Wallet::Alipay),
            (19, 62) => Some(Wallet::UnionPay),
            _ => None,
        }
    }
}

impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payment_codes_route_to_their_wallet() {
        assert_eq!(
            Wallet::of_payment_code("120061098828009406"),
            Some(Wallet::WechatPay)
        );
        assert_eq!(
            Wallet::of_payment_code(" 134567890123456789\n"),
            Some(Wallet::WechatPay)
        );
        assert_eq!(
            Wallet::of_payment_code("28763443825664394"),
            Some(Wallet::Alipay)
        );
        assert_eq!(
            Wallet::of_payment_code("3012345678901234"),
            Some(Wallet::Alipay)
        );
        assert_eq!(
            Wallet::of_payment_code("6212345678901234567"),
            Some(Wallet::UnionPay)
        );
        for bad in [
            "",
            "abc",
            "16345678901234567",
            "1600000000000000000",
            "621234567890123456",
            "24123456789012345678",
            "hQVDUFYwMQ==",
            "12006109882800940a",
        ] {
            assert_eq!(Wallet::of_payment_code(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn routing_never_panics_and_never_matches_two_wallets(code in "[0-9]{0,26}") {
            let found = Wallet::of_payment_code(&code);
            if let Some(w) = found {
                prop_assert!(Wallet::ALL.contains(&w));
            }
        }
    }
}
