//! The two ACP endpoints: `/gateway/api/backTransReq.do` and `/gateway/api/queryTrans.do`.
//!
//! Order of checks, each failing with a signed form answer (HTTP 200, never a 500): the body
//! is a well-formed form (10); the common fields are present (13); `version` and `encoding`
//! are the profile's (10); `merId` is well-formed (10) and the sandbox's merchant (30);
//! `signMethod` is 01, `certId` names the merchant certificate and the signature verifies
//! (11); the remaining constant fields, `orderId` and `txnTime` are well-formed (10); the
//! path serves that `txnType`/`txnSubType` (30). Then the transaction (`trans.rs`).

use std::time::Duration as StdDuration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::trans::{self, refuse, UnionpayReply};
use super::wire::{self, UnionpayCode, UnionpayFields};
use super::{sign, UnionpayAccount, UnionpayContext};
use crate::model::Wallet;

/// How long an unanswered request holds its connection before it is dropped.
const NO_ANSWER_HOLD: StdDuration = StdDuration::from_secs(120);

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnionpayEndpoint {
    BackTrans,
    Query,
}

pub(crate) async fn back_trans(State(ctx): State<UnionpayContext>, body: Bytes) -> Response {
    serve(&ctx, UnionpayEndpoint::BackTrans, &body).await
}

pub(crate) async fn query_trans(State(ctx): State<UnionpayContext>, body: Bytes) -> Response {
    serve(&ctx, UnionpayEndpoint::Query, &body).await
}

/// The request fields an answer echoes.
const ECHOED: [&str; 9] = [
    "bizType",
    "accessType",
    "txnType",
    "txnSubType",
    "merId",
    "orderId",
    "txnTime",
    "reqReserved",
    "termId",
];

async fn serve(ctx: &UnionpayContext, endpoint: UnionpayEndpoint, body: &[u8]) -> Response {
    let account = UnionpayAccount::of(&ctx.sandbox);
    let (echo, reply) = match &account {
        Some(account) => process(ctx, account, endpoint, body),
        None => {
            tracing::warn!("unionpay: the sandbox has no UnionPay merchant account");
            (
                UnionpayFields::new(),
                UnionpayReply::Answer(refuse(UnionpayCode::NotSupported, "no merchant account")),
            )
        }
    };
    match reply {
        UnionpayReply::Answer(fields) => {
            let mut out = echo;
            out.extend(fields);
            answer(ctx, account.as_ref(), out)
        }
        UnionpayReply::NoAnswer => {
            tokio::time::sleep(NO_ANSWER_HOLD).await;
            (StatusCode::GATEWAY_TIMEOUT, Body::empty()).into_response()
        }
    }
}

/// Parses, checks and dispatches one request; returns the echoed fields and the reply.
fn process(
    ctx: &UnionpayContext,
    account: &UnionpayAccount,
    endpoint: UnionpayEndpoint,
    body: &[u8],
) -> (UnionpayFields, UnionpayReply) {
    let fields = match wire::parse_form(body) {
        Ok(fields) => fields,
        Err(e) => {
            return (
                UnionpayFields::new(),
                UnionpayReply::Answer(refuse(UnionpayCode::FormatError, e)),
            )
        }
    };
    let echo: UnionpayFields = ECHOED
        .iter()
        .filter_map(|k| {
            let v = fields.get(*k).filter(|v| !v.is_empty())?;
            Some(((*k).to_owned(), v.clone()))
        })
        .collect();
    let reply =
        check_and_dispatch(ctx, account, endpoint, &fields).unwrap_or_else(UnionpayReply::Answer);
    (echo, reply)
}

pub(crate) fn expect_value(
    fields: &UnionpayFields,
    key: &str,
    wanted: &str,
) -> Result<(), UnionpayFields> {
    match fields.get(key) {
        Some(v) if v == wanted => Ok(()),
        _ => Err(refuse(
            UnionpayCode::FormatError,
            format!("{key} must be {wanted}"),
        )),
    }
}

fn check_and_dispatch(
    ctx: &UnionpayContext,
    account: &UnionpayAccount,
    endpoint: UnionpayEndpoint,
    fields: &UnionpayFields,
) -> Result<UnionpayReply, UnionpayFields> {
    let mut required = vec![
        "version",
        "encoding",
        "signMethod",
        "certId",
        "signature",
        "txnType",
        "txnSubType",
        "bizType",
        "accessType",
        "merId",
        "orderId",
        "txnTime",
    ];
    // The ACP query carries no channel; the other transactions must name theirs.
    if endpoint == UnionpayEndpoint::BackTrans {
        required.push("channelType");
    }
    for key in required {
        trans::need(fields, key)?;
    }
    expect_value(fields, "version", wire::VERSION)?;
    if !fields
        .get("encoding")
        .is_some_and(|e| e.eq_ignore_ascii_case(wire::ENCODING))
    {
        return Err(refuse(UnionpayCode::FormatError, "encoding must be utf-8"));
    }
    let mer_id = trans::need(fields, "merId")?;
    if !wire::valid_mer_id(mer_id) {
        return Err(refuse(UnionpayCode::FormatError, "merId must be 15 digits"));
    }
    if mer_id != account.mer_id {
        return Err(refuse(
            UnionpayCode::NotSupported,
            format!("unknown merchant {mer_id}"),
        ));
    }
    verify_signature(ctx, account, fields)?;
    expect_value(fields, "bizType", wire::BIZ_TYPE)?;
    expect_value(fields, "accessType", wire::ACCESS_TYPE)?;
    if fields.get("channelType").is_some_and(|c| !c.is_empty()) {
        expect_value(fields, "channelType", wire::CHANNEL_TYPE)?;
    }
    if !wire::valid_order_id(trans::need(fields, "orderId")?) {
        return Err(refuse(
            UnionpayCode::FormatError,
            "orderId must be 8-32 letters and digits",
        ));
    }
    if wire::parse_time(trans::need(fields, "txnTime")?).is_none() {
        return Err(refuse(
            UnionpayCode::FormatError,
            "txnTime must be yyyyMMddHHmmss",
        ));
    }
    let txn_type = trans::need(fields, "txnType")?;
    let txn_sub_type = trans::need(fields, "txnSubType")?;
    let sandbox = &ctx.sandbox;
    match (endpoint, txn_type, txn_sub_type) {
        (UnionpayEndpoint::BackTrans, "01", "06") => trans::consume(sandbox, account, fields),
        (UnionpayEndpoint::BackTrans, "01", "07") => trans::apply_qr(sandbox, account, fields),
        (UnionpayEndpoint::BackTrans, "31", "00") => trans::cancel(sandbox, account, fields),
        (UnionpayEndpoint::BackTrans, "04", "00") => trans::refund(sandbox, account, fields),
        (UnionpayEndpoint::Query, "00", "00") => trans::query(sandbox, account, fields),
        _ => Err(refuse(
            UnionpayCode::NotSupported,
            format!("txnType {txn_type}/txnSubType {txn_sub_type} is not served at this path"),
        )),
    }
}

/// `signMethod` 01, `certId` = the merchant certificate's serial, a signature by its key.
pub(crate) fn verify_signature(
    ctx: &UnionpayContext,
    account: &UnionpayAccount,
    fields: &UnionpayFields,
) -> Result<(), UnionpayFields> {
    if trans::need(fields, "signMethod")? != wire::SIGN_METHOD {
        return Err(refuse(
            UnionpayCode::SignatureFailed,
            "signMethod must be 01 (SHA-256 with RSA)",
        ));
    }
    let cert = ctx.keys.cert(&account.merchant_cert_pem).map_err(|e| {
        tracing::warn!(error = %e, "unionpay: the merchant certificate is unusable");
        refuse(
            UnionpayCode::SignatureFailed,
            "no usable merchant certificate",
        )
    })?;
    let cert_id = trans::need(fields, "certId")?;
    if cert_id != cert.serial {
        return Err(refuse(
            UnionpayCode::SignatureFailed,
            format!("certId {cert_id} is not the merchant's certificate"),
        ));
    }
    if !sign::verify(&cert.verifier, fields) {
        return Err(refuse(
            UnionpayCode::SignatureFailed,
            "the signature does not verify",
        ));
    }
    Ok(())
}

/// The signed form answer. A signing failure (only possible with a corrupt account) still
/// answers, unsigned, rather than failing the request.
pub(crate) fn answer(
    ctx: &UnionpayContext,
    account: Option<&UnionpayAccount>,
    mut fields: UnionpayFields,
) -> Response {
    fields.insert("version".to_owned(), wire::VERSION.to_owned());
    fields.insert("encoding".to_owned(), wire::ENCODING.to_owned());
    fields.insert("signMethod".to_owned(), wire::SIGN_METHOD.to_owned());
    if ctx
        .sandbox
        .take_amountless(Wallet::Unionpay, fields.contains_key("currencyCode"))
    {
        fields.remove("currencyCode");
    }
    if let Some(account) = account {
        let wrong = ctx
            .sandbox
            .take_fault(Wallet::Unionpay, |f| &mut f.bad_signature_next);
        if let Err(e) = sign::seal(&ctx.keys, account, &mut fields, wrong) {
            tracing::warn!(error = %e, "unionpay: cannot sign an answer");
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, wire::UNIONPAY_FORM_CONTENT_TYPE)],
        wire::encode_form(&fields),
    )
        .into_response()
}
