//! The payment notification: after a consume or a QR order is paid, UnionPay posts the signed
//! form to the order's `backUrl` (`respCode=00`, `queryId`, amounts, settlement, the
//! order's `txnTime`), and resends it until the merchant answers HTTP 200.

use super::trans::{add_trade_fields, fields_of, trade_txn_type};
use super::wire::{self, UnionpayCode};
use super::{orders, sign, UnionpayAccount, UnionpayKeyring};
use crate::model::{Trade, Wallet};
use crate::Sandbox;

/// The form body for a paid trade; `None` if the trade was never paid or the sandbox has no
/// UnionPay account. `forged` (a fault) gives a signature that does not verify.
pub(crate) fn body(
    sandbox: &Sandbox,
    keys: &UnionpayKeyring,
    trade: &Trade,
    forged: bool,
) -> Option<String> {
    // A payment cancelled after it was made still happened: it is still notified.
    trade.paid_at?;
    let (account, order) = sandbox.with(|state, _, _| {
        (
            UnionpayAccount::of_state(state),
            orders::get(state, &trade.out_trade_no),
        )
    });
    let account = account?;
    // The request's own txnTime: the merchant looks the order up by orderId + txnTime.
    let txn_time = order
        .map(|o| o.txn_time)
        .unwrap_or_else(|| wire::beijing(trade.created_at, "%Y%m%d%H%M%S"));
    let (txn_type, txn_sub_type) = trade_txn_type(trade);
    let mut fields = fields_of(UnionpayCode::Success);
    for (k, v) in [
        ("version", wire::VERSION),
        ("encoding", wire::ENCODING),
        ("signMethod", wire::SIGN_METHOD),
        ("bizType", wire::BIZ_TYPE),
        ("accessType", wire::ACCESS_TYPE),
        ("txnType", txn_type),
        ("txnSubType", txn_sub_type),
        ("merId", trade.merchant.as_str()),
        ("orderId", trade.out_trade_no.as_str()),
        ("txnTime", txn_time.as_str()),
    ] {
        fields.insert(k.to_owned(), v.to_owned());
    }
    add_trade_fields(&mut fields, trade, true);
    if sandbox.take_amountless(Wallet::Unionpay, fields.contains_key("currencyCode")) {
        fields.remove("currencyCode");
    }
    if let Err(e) = sign::seal(keys, &account, &mut fields, forged) {
        tracing::warn!(error = %e, "unionpay: cannot sign a notification");
        return None;
    }
    Some(wire::encode_form(&fields))
}
