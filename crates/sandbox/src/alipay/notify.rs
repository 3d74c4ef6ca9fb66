//! The `trade_status_sync` notification for a paid trade (`wallets.md` §2.7): form-encoded
//! fields signed with the sandbox's Alipay key over every non-empty field except `sign` and
//! `sign_type`.
//!
//! The notification describes the payment event, so it always says `TRADE_SUCCESS` with the
//! amounts paid, even when a retry goes out after later refunds — as Alipay resends the
//! same notification.

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::sign;
use super::wire;
use super::AlipayAccount;
use crate::model::Trade;
use crate::rsa_sha256::RsaSha256Signer;

/// The form body, or `None` for a trade that was never paid.
pub(crate) fn body(
    account: &AlipayAccount,
    key: &RsaSha256Signer,
    trade: &Trade,
    forged: bool,
    amountless: bool,
    now: DateTime<Utc>,
) -> Option<String> {
    let paid_at = trade.paid_at?;
    let notify_time = wire::format_time(now);
    let notify_id = {
        let digest = Sha256::digest(
            format!("{}/{}/{notify_time}", trade.merchant, trade.transaction_id).as_bytes(),
        );
        hex::encode(digest).get(..34).unwrap_or_default().to_owned()
    };
    let customer = trade.customer_id.clone().unwrap_or_default();
    let total = wire::format_amount(trade.total);
    // Notifications spell the funding list's keys in camelCase, unlike the synchronous
    // answers: a JSON text inside a form field.
    let fund_bill_list =
        json!([{"amount": wire::format_amount(trade.cny_fen), "fundChannel": "ALIPAYACCOUNT"}])
            .to_string();
    let mut fields: Vec<(&str, String)> = vec![
        ("notify_time", notify_time),
        ("notify_type", "trade_status_sync".to_owned()),
        ("notify_id", notify_id),
        ("app_id", account.app_id.clone()),
        ("charset", "utf-8".to_owned()),
        ("version", "1.0".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("trade_no", trade.transaction_id.clone()),
        ("out_trade_no", trade.out_trade_no.clone()),
        ("buyer_id", wire::buyer_id(&customer)),
        ("buyer_logon_id", wire::buyer_logon_id(&customer)),
        ("seller_id", account.seller_id.clone()),
        ("trade_status", "TRADE_SUCCESS".to_owned()),
        ("total_amount", total.clone()),
        ("receipt_amount", total.clone()),
        ("invoice_amount", total.clone()),
        ("buyer_pay_amount", total),
        ("point_amount", "0.00".to_owned()),
        ("subject", trade.subject.clone()),
        ("gmt_create", wire::format_time(trade.created_at)),
        ("gmt_payment", wire::format_time(paid_at)),
        ("fund_bill_list", fund_bill_list),
    ];
    if trade.currency != "CNY" {
        fields.push(("trans_currency", trade.currency.clone()));
        fields.push(("settle_currency", trade.currency.clone()));
        fields.push(("pay_currency", "CNY".to_owned()));
        fields.push(("pay_amount", wire::format_amount(trade.cny_fen)));
        fields.push(("trans_pay_rate", wire::format_rate(trade.rate_e8)));
    }
    if amountless {
        fields.retain(|(k, _)| *k != "total_amount");
    }
    let text = sign::string_to_sign(
        fields.iter().map(|(k, v)| (*k, v.as_str())),
        &["sign", "sign_type"],
    );
    let signature = match sign::sign(key, &text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "alipay: cannot sign a notification");
            return None;
        }
    };
    let signature = if forged {
        sign::forge(&signature)
    } else {
        signature
    };
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &fields {
        form.append_pair(k, v);
    }
    form.append_pair("sign", &signature);
    Some(form.finish())
}
