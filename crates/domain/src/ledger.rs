//! The double-entry ledger: accounts, entries, and the postings of payments and refunds
//! (docs/LEDGER.md).
//!
//! A posting is a set of entries in one currency whose amounts sum to zero: debits are
//! positive, credits negative. [`Posting::new`] refuses anything else, so an unbalanced
//! posting cannot be built, let alone stored. The functions here compute the postings of a
//! payment and of a refund from amounts alone; the store writes them in the same transaction
//! as the state change they record.

use std::fmt;
use std::str::FromStr;

use crate::{Currency, MerchantId, Money, Order, Wallet};

/// One basis point is 1/10,000: 60 bps = 0.6 %.
const BPS_SCALE: i128 = 10_000;

/// The provider's fee on a merchant's payments, in basis points (0 to 10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeeRate(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fee rate is 0 to 10000 basis points (100 bps = 1 %), got {0}")]
pub struct FeeRateError(pub i64);

impl FeeRate {
    pub const ZERO: FeeRate = FeeRate(0);

    pub fn from_bps(bps: i64) -> Result<FeeRate, FeeRateError> {
        u16::try_from(bps)
            .ok()
            .filter(|b| i128::from(*b) <= BPS_SCALE)
            .map(FeeRate)
            .ok_or(FeeRateError(bps))
    }

    pub fn bps(self) -> i64 {
        i64::from(self.0)
    }

    /// The fee on `gross`: `gross × bps / 10,000`, rounded half up to the minor unit.
    pub fn fee_on(self, gross: Money) -> Money {
        Money::new(
            mul_div_half_up(gross.minor(), i128::from(self.0), BPS_SCALE),
            gross.currency(),
        )
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bps", self.0)
    }
}

/// `a × num / den` rounded half up, for non-negative `a` and `num` and positive `den`.
fn mul_div_half_up(a: i64, num: i128, den: i128) -> i64 {
    let v = (i128::from(a) * num * 2 + den) / (den * 2);
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `a × num / den` rounded down, for non-negative values and positive `den`.
fn mul_div_floor(a: i64, num: i64, den: i64) -> i64 {
    let v = i128::from(a) * i128::from(num) / i128::from(den.max(1));
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// An account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// What a wallet owes the provider for payments it collected, less refunds it paid back
    /// (an asset: debit balance).
    WalletClearing(Wallet),
    /// What the provider owes a merchant (a liability: credit balance).
    MerchantPayable(MerchantId),
    /// The provider's fee income (credit balance).
    ProviderFees,
    /// What a wallet charged the provider, as its bills state (an expense: debit balance).
    WalletFees(Wallet),
    /// What the provider has settled to a merchant (paid out or due in a payout file): a
    /// day's net moves here from [`Account::MerchantPayable`] when the day is settled.
    MerchantSettled(MerchantId),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::WalletClearing(w) => write!(f, "wallet_clearing:{}", w.as_str()),
            Account::MerchantPayable(m) => write!(f, "merchant_payable:{m}"),
            Account::ProviderFees => f.write_str("provider_fees"),
            Account::WalletFees(w) => write!(f, "wallet_fees:{}", w.as_str()),
            Account::MerchantSettled(m) => write!(f, "merchant_settled:{m}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a ledger account: {0:?}")]
pub struct AccountParseError(pub String);

impl FromStr for Account {
    type Err = AccountParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AccountParseError(s.to_owned());
        if s == "provider_fees" {
            return Ok(Account::ProviderFees);
        }
        match s.split_once(':') {
            Some(("wallet_clearing", w)) => Wallet::parse(w)
                .map(Account::WalletClearing)
                .ok_or_else(bad),
            Some(("merchant_payable", m)) => MerchantId::parse(m)
                .map(Account::MerchantPayable)
                .map_err(|_| bad()),
            Some(("wallet_fees", w)) => Wallet::parse(w).map(Account::WalletFees).ok_or_else(bad),
            Some(("merchant_settled", m)) => MerchantId::parse(m)
                .map(Account::MerchantSettled)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

/// What a posting records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostingKind {
    Payment,
    Refund,
    /// A wallet's fee on one bill line (docs/RECONCILIATION.md).
    WalletFee,
    /// A merchant's settled day.
    Settlement,
}

impl PostingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PostingKind::Payment => "payment",
            PostingKind::Refund => "refund",
            PostingKind::WalletFee => "wallet_fee",
            PostingKind::Settlement => "settlement",
        }
    }
}

impl FromStr for PostingKind {
    type Err = AccountParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "payment" => Ok(PostingKind::Payment),
            "refund" => Ok(PostingKind::Refund),
            "wallet_fee" => Ok(PostingKind::WalletFee),
            "settlement" => Ok(PostingKind::Settlement),
            other => Err(AccountParseError(other.to_owned())),
        }
    }
}

/// One line of a posting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    /// Debit positive, credit negative.
    pub amount: Money,
    /// On a wallet's leg: the CNY the customer's wallet moved (negative when paid back).
    pub payer_amount: Option<Money>,
}

/// Entries that balance: one currency, summing to zero, no empty line, one line per account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Names the posting, unique in the ledger: `payment:{order key}`, `refund:{refund key}`.
    txn: String,
    kind: PostingKind,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("posting {txn} does not balance: its entries sum to {sum}")]
    Unbalanced { txn: String, sum: i64 },
    #[error("posting {0} mixes currencies")]
    MixedCurrencies(String),
    #[error("posting {0} has fewer than two entries")]
    TooFewEntries(String),
    #[error("posting {0} names an account twice")]
    DuplicateAccount(String),
    #[error("{0}")]
    Invalid(String),
}

impl Posting {
    /// Builds a posting, refusing one that does not balance. Zero-amount entries are dropped.
    pub fn new(
        txn: String,
        kind: PostingKind,
        entries: Vec<Entry>,
    ) -> Result<Posting, LedgerError> {
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.amount.minor() != 0 || e.payer_amount.is_some_and(|p| p.minor() != 0))
            .collect();
        if entries.len() < 2 {
            return Err(LedgerError::TooFewEntries(txn));
        }
        let currency = entries[0].amount.currency();
        if entries.iter().any(|e| e.amount.currency() != currency) {
            return Err(LedgerError::MixedCurrencies(txn));
        }
        let sum: i128 = entries.iter().map(|e| i128::from(e.amount.minor())).sum();
        if sum != 0 {
            return Err(LedgerError::Unbalanced {
                txn,
                sum: i64::try_from(sum).unwrap_or(i64::MAX),
            });
        }
        let mut accounts: Vec<&Account> = entries.iter().map(|e| &e.account).collect();
        accounts.sort();
        accounts.dedup();
        if accounts.len() != entries.len() {
            return Err(LedgerError::DuplicateAccount(txn));
        }
        Ok(Posting { txn, kind, entries })
    }

    pub fn txn(&self) -> &str {
        &self.txn
    }

    pub fn kind(&self) -> PostingKind {
        self.kind
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn currency(&self) -> Currency {
        self.entries[0].amount.currency()
    }
}

/// The name of a payment's posting.
pub fn payment_txn(order_key: &str) -> String {
    format!("payment:{order_key}")
}

/// The name of a refund's posting.
pub fn refund_txn(refund_key: &str) -> String {
    format!("refund:{refund_key}")
}

/// A paid order's posting: the wallet owes the amount paid (tip included), the merchant is
/// owed it less the fee, the provider earns the fee.
///
/// | account | debit | credit |
/// |---|---|---|
/// | `wallet_clearing:{wallet}` | gross | |
/// | `merchant_payable:{merchant}` | | gross − fee |
/// | `provider_fees` | | fee |
pub fn payment_posting(order: &Order, fee_rate: FeeRate) -> Result<Posting, LedgerError> {
    let gross = order.total();
    if gross.minor() <= 0 {
        return Err(LedgerError::Invalid(format!(
            "order {} has no amount to post",
            order.key
        )));
    }
    let fee = fee_rate.fee_on(gross);
    let currency = gross.currency();
    Posting::new(
        payment_txn(&order.key),
        PostingKind::Payment,
        vec![
            Entry {
                account: Account::WalletClearing(order.wallet),
                amount: gross,
                payer_amount: order.cny_amount,
            },
            Entry {
                account: Account::MerchantPayable(order.merchant_id.clone()),
                amount: Money::new(-(gross.minor() - fee.minor()), currency),
                payer_amount: None,
            },
            Entry {
                account: Account::ProviderFees,
                amount: Money::new(-fee.minor(), currency),
                payer_amount: None,
            },
        ],
    )
}

/// The name of a wallet fee's posting: one per bill line, named by the line's kind and our
/// number (the order's key for a payment, the refund's key for a refund).
pub fn wallet_fee_txn(wallet: Wallet, line_kind: &str, subject: &str) -> String {
    format!("wallet_fee:{}:{line_kind}:{subject}", wallet.as_str())
}

/// A wallet's fee on one bill line: what the wallet keeps of what it collected, so that its
/// clearing account comes to what it will actually pay the provider.
///
/// | account | debit | credit |
/// |---|---|---|
/// | `wallet_fees:{wallet}` | fee | |
/// | `wallet_clearing:{wallet}` | | fee |
///
/// A fee given back (a refund's share, negative) posts the other way. A zero fee is no
/// posting (`LedgerError::TooFewEntries`).
pub fn wallet_fee_posting(wallet: Wallet, txn: String, fee: Money) -> Result<Posting, LedgerError> {
    Posting::new(
        txn,
        PostingKind::WalletFee,
        vec![
            Entry {
                account: Account::WalletFees(wallet),
                amount: fee,
                payer_amount: None,
            },
            Entry {
                account: Account::WalletClearing(wallet),
                amount: Money::new(-fee.minor(), fee.currency()),
                payer_amount: None,
            },
        ],
    )
}

/// The name of the posting that settles the payment or refund posting `posting_txn`.
pub fn settlement_txn(posting_txn: &str) -> String {
    format!("settlement:{posting_txn}")
}

/// Settles what a payment or refund left payable to a merchant (`net`: positive when the
/// merchant was owed it, negative for a refund it bears):
///
/// | account | debit | credit |
/// |---|---|---|
/// | `merchant_payable:{merchant}` | net | |
/// | `merchant_settled:{merchant}` | | net |
///
/// A zero net is no posting (`LedgerError::TooFewEntries`).
pub fn settlement_posting(
    merchant: &MerchantId,
    posting_txn: &str,
    net: Money,
) -> Result<Posting, LedgerError> {
    Posting::new(
        settlement_txn(posting_txn),
        PostingKind::Settlement,
        vec![
            Entry {
                account: Account::MerchantPayable(merchant.clone()),
                amount: net,
                payer_amount: None,
            },
            Entry {
                account: Account::MerchantSettled(merchant.clone()),
                amount: Money::new(-net.minor(), net.currency()),
                payer_amount: None,
            },
        ],
    )
}

/// What an order's ledger says before a refund is posted, read in the refund's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundBasis {
    /// What the customer paid (amount + tip), and the fee taken on it.
    pub gross: Money,
    pub fee: Money,
    /// What the customer's wallet moved in CNY for the payment, when the wallet said.
    pub payer_paid: Option<Money>,
    /// Refunds already posted: amount, fee given back, CNY given back.
    pub refunded: Money,
    pub fee_returned: Money,
    pub payer_returned: Option<Money>,
    /// What the wallet says this refund gives the customer back in CNY (WeChat
    /// `cash_refund_fee`, …), when it says: used instead of the proportional rule, so that the
    /// ledger matches the wallet's bill, but never beyond what is left of what was paid.
    pub stated_payer_back: Option<Money>,
}

/// A refund's posting: the wallet pays the customer back, the merchant bears the refund less
/// the share of the fee the provider gives back.
///
/// The fee given back is proportional and cumulative: after refunds totalling `r` of a
/// payment `g` that paid fee `f`, the provider has given back `round_half_up(f × r / g)`; a
/// full refund gives back the whole fee, and no sequence of partial refunds gives back more.
///
/// The CNY returned is what the wallet says it gave back ([`RefundBasis::stated_payer_back`]),
/// capped at what is left of what was paid; when the wallet does not say, the wallets' rule
/// (`wallets.md` §1.9): the same share of what the customer paid, rounded down, and the
/// refund that completes the order returns the rest.
pub fn refund_posting(
    order: &Order,
    refund_key: &str,
    amount: Money,
    basis: &RefundBasis,
) -> Result<Posting, LedgerError> {
    let currency = basis.gross.currency();
    let (g, r, before) = (basis.gross.minor(), amount.minor(), basis.refunded.minor());
    if amount.currency() != currency || r <= 0 || before < 0 || before + r > g {
        return Err(LedgerError::Invalid(format!(
            "refund {refund_key} of {amount} does not fit order {} ({} paid, {} refunded)",
            order.key, basis.gross, basis.refunded
        )));
    }
    let fee_after = mul_div_half_up(basis.fee.minor(), i128::from(before + r), i128::from(g));
    let fee_back = fee_after - basis.fee_returned.minor();
    let payer_back = basis.payer_paid.map(|paid| {
        let returned = basis.payer_returned.map_or(0, Money::minor);
        let stated = basis
            .stated_payer_back
            .filter(|s| s.currency() == paid.currency() && s.minor() >= 0);
        let back = if let Some(stated) = stated {
            stated.minor().min(paid.minor() - returned).max(0)
        } else if before + r == g {
            paid.minor() - returned
        } else {
            mul_div_floor(paid.minor(), r, g)
        };
        Money::new(-back, paid.currency())
    });
    Posting::new(
        refund_txn(refund_key),
        PostingKind::Refund,
        vec![
            Entry {
                account: Account::WalletClearing(order.wallet),
                amount: Money::new(-r, currency),
                payer_amount: payer_back,
            },
            Entry {
                account: Account::MerchantPayable(order.merchant_id.clone()),
                amount: Money::new(r - fee_back, currency),
                payer_amount: None,
            },
            Entry {
                account: Account::ProviderFees,
                amount: Money::new(fee_back, currency),
                payer_amount: None,
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cad(minor: i64) -> Money {
        Money::new(minor, Currency::Cad)
    }

    #[test]
    fn fees_round_half_up() {
        let rate = FeeRate::from_bps(60).unwrap();
        assert_eq!(rate.fee_on(cad(1000)), cad(6));
        // 0.6 % of 1.25 = 0.0075 → 0.01
        assert_eq!(rate.fee_on(cad(125)), cad(1));
        // 0.6 % of 0.83 = 0.00498 → 0.00
        assert_eq!(rate.fee_on(cad(83)), cad(0));
        assert_eq!(
            FeeRate::from_bps(10_000).unwrap().fee_on(cad(777)),
            cad(777)
        );
        assert!(FeeRate::from_bps(10_001).is_err());
        assert!(FeeRate::from_bps(-1).is_err());
    }

    #[test]
    fn accounts_round_trip() {
        for a in [
            Account::WalletClearing(Wallet::Alipay),
            Account::MerchantPayable(MerchantId::parse("ON00000001").unwrap()),
            Account::ProviderFees,
            Account::WalletFees(Wallet::UnionPay),
            Account::MerchantSettled(MerchantId::parse("ON00000001").unwrap()),
        ] {
            assert_eq!(a.to_string().parse::<Account>().unwrap(), a);
        }
        assert!("wallet_clearing:paypal".parse::<Account>().is_err());
        assert!("cash".parse::<Account>().is_err());
    }

    #[test]
    fn an_unbalanced_posting_cannot_be_built() {
        let e = |account, minor| Entry {
            account,
            amount: cad(minor),
            payer_amount: None,
        };
        let err = Posting::new(
            "t".into(),
            PostingKind::Payment,
            vec![
                e(Account::WalletClearing(Wallet::WechatPay), 100),
                e(Account::ProviderFees, -99),
            ],
        );
        assert_eq!(
            err,
            Err(LedgerError::Unbalanced {
                txn: "t".into(),
                sum: 1
            })
        );
        let mixed = Posting::new(
            "t".into(),
            PostingKind::Payment,
            vec![
                e(Account::WalletClearing(Wallet::WechatPay), 100),
                Entry {
                    account: Account::ProviderFees,
                    amount: Money::new(-100, Currency::Usd),
                    payer_amount: None,
                },
            ],
        );
        assert_eq!(mixed, Err(LedgerError::MixedCurrencies("t".into())));
    }

    #[test]
    fn a_refund_gives_back_the_cny_the_wallet_states_never_more_than_is_left() {
        let order =
            crate::order::tests::sample_order(cad(1000), Some(Money::new(5201, Currency::Cny)));
        let basis = |stated: Option<i64>, returned: i64| RefundBasis {
            gross: cad(1000),
            fee: cad(6),
            payer_paid: order.cny_amount,
            refunded: cad(0),
            fee_returned: cad(0),
            payer_returned: Some(Money::new(returned, Currency::Cny)),
            stated_payer_back: stated.map(|s| Money::new(s, Currency::Cny)),
        };
        let back = |b: &RefundBasis| {
            -refund_posting(&order, "R1", cad(500), b)
                .unwrap()
                .entries()
                .iter()
                .find_map(|e| e.payer_amount)
                .unwrap()
                .minor()
        };
        // The proportional rule rounds 2600.5 down; the wallet says 2601.
        assert_eq!(back(&basis(None, 0)), 2600);
        assert_eq!(back(&basis(Some(2601), 0)), 2601);
        // Never beyond what is left of what was paid.
        assert_eq!(back(&basis(Some(9999), 5000)), 201);
    }

    proptest! {
        /// Any sequence of partial refunds: every posting balances, the fee given back never
        /// exceeds the fee and equals it once fully refunded, and the CNY given back never
        /// exceeds what was paid and equals it once fully refunded.
        #[test]
        fn refunds_return_fee_and_cny_exactly(
            gross in 1i64..5_000_000,
            bps in 0i64..=10_000,
            rate_cny in 1i64..1_000,
            cuts in proptest::collection::vec(1u32..1000, 1..8),
        ) {
            let order = crate::order::tests::sample_order(cad(gross), Some(Money::new(gross * rate_cny / 100 + 1, Currency::Cny)));
            let pay = payment_posting(&order, FeeRate::from_bps(bps).unwrap()).unwrap();
            let fee = -pay.entries().iter().find(|e| e.account == Account::ProviderFees).map_or(0, |e| e.amount.minor());
            let mut basis = RefundBasis {
                gross: cad(gross),
                fee: cad(fee),
                payer_paid: order.cny_amount,
                refunded: cad(0),
                fee_returned: cad(0),
                payer_returned: Some(Money::new(0, Currency::Cny)),
                stated_payer_back: None,
            };
            // Split the order into refunds by the cuts' weights; the last takes the rest.
            let total: i64 = cuts.iter().map(|c| i64::from(*c)).sum();
            let mut amounts: Vec<i64> = cuts.iter().map(|c| gross * i64::from(*c) / total).filter(|a| *a > 0).collect();
            let given: i64 = amounts.iter().sum();
            amounts.push(gross - given);
            amounts.retain(|a| *a > 0);
            for (i, r) in amounts.iter().enumerate() {
                let p = refund_posting(&order, &format!("R{i}"), cad(*r), &basis).unwrap();
                let fee_back = p.entries().iter().find(|e| e.account == Account::ProviderFees).map_or(0, |e| e.amount.minor());
                let cny_back = -p.entries().iter().find_map(|e| e.payer_amount).map_or(0, Money::minor);
                prop_assert!(fee_back >= 0);
                prop_assert!(cny_back >= 0);
                basis.refunded = cad(basis.refunded.minor() + r);
                basis.fee_returned = cad(basis.fee_returned.minor() + fee_back);
                basis.payer_returned = Some(Money::new(basis.payer_returned.unwrap().minor() + cny_back, Currency::Cny));
                prop_assert!(basis.fee_returned.minor() <= fee);
                prop_assert!(basis.payer_returned.unwrap().minor() <= order.cny_amount.unwrap().minor());
            }
            prop_assert_eq!(basis.refunded.minor(), gross);
            prop_assert_eq!(basis.fee_returned.minor(), fee);
            prop_assert_eq!(basis.payer_returned, order.cny_amount);
            // No refund beyond the payment.
            prop_assert!(refund_posting(&order, "X", cad(1), &basis).is_err());
        }
    }
}
