//! The `POST /alipay/gateway.do` endpoint: collects the parameters (form body, plus the query
//! string where SDKs sometimes put the common ones), checks the common parameters and the
//! request signature, hands the call to `trade.rs`, and writes the answer as Alipay does:
//! `{"<method>_response":{…},"sign":"…"}` with the signature over the exact text of the
//! `*_response` value.
//!
//! Problems with the envelope (missing or invalid common parameters, unknown method, bad
//! signature) are answered under `error_response`. Those are signed when the `app_id` is the
//! sandbox's (Alipay knows whose key to use) and unsigned when it is missing or unknown, so
//! a gateway meets both kinds the protocol notes warn about.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::sign;
use super::trade::{self, AlipayReply};
use super::wire::AlipayError;
use super::{AlipayAccount, AlipayContext};
use crate::model::Wallet;

/// The methods the sandbox implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlipayMethod {
    Pay,
    Precreate,
    Query,
    Cancel,
    Close,
    Refund,
    RefundQuery,
    /// `alipay.data.dataservice.bill.downloadurl.query` (`bills.md` §2).
    BillDownloadUrl,
}

impl AlipayMethod {
    const ALL: [AlipayMethod; 8] = [
        AlipayMethod::Pay,
        AlipayMethod::Precreate,
        AlipayMethod::Query,
        AlipayMethod::Cancel,
        AlipayMethod::Close,
        AlipayMethod::Refund,
        AlipayMethod::RefundQuery,
        AlipayMethod::BillDownloadUrl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AlipayMethod::Pay => "alipay.trade.pay",
            AlipayMethod::Precreate => "alipay.trade.precreate",
            AlipayMethod::Query => "alipay.trade.query",
            AlipayMethod::Cancel => "alipay.trade.cancel",
            AlipayMethod::Close => "alipay.trade.close",
            AlipayMethod::Refund => "alipay.trade.refund",
            AlipayMethod::RefundQuery => "alipay.trade.fastpay.refund.query",
            AlipayMethod::BillDownloadUrl => "alipay.data.dataservice.bill.downloadurl.query",
        }
    }

    fn parse(name: &str) -> Option<AlipayMethod> {
        AlipayMethod::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The member the answer goes under: dots become underscores, plus `_response`.
    pub fn response_key(self) -> String {
        format!("{}_response", self.name().replace('.', "_"))
    }
}

/// A call whose envelope checked out.
pub(crate) struct AlipayRequest {
    pub method: AlipayMethod,
    pub account: AlipayAccount,
    pub notify_url: Option<String>,
    pub biz_content: String,
}

/// An envelope problem, and whether its `error_response` is signed.
struct Rejected {
    error: AlipayError,
    signed: bool,
}

/// All parameters, decoded. Body values win over query-string values of the same name.
fn collect_params(query: Option<&str>, body: &[u8]) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    if let Some(query) = query {
        params.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    params.extend(url::form_urlencoded::parse(body).into_owned());
    params
}

fn check_envelope(
    ctx: &AlipayContext,
    params: &BTreeMap<String, String>,
) -> Result<AlipayRequest, Rejected> {
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let unsigned = |error| Rejected {
        error,
        signed: false,
    };
    let signed = |error| Rejected {
        error,
        signed: true,
    };

    let Some(account) = AlipayAccount::of(&ctx.sandbox) else {
        // Only a hand-edited state file gets here.
        return Err(unsigned(AlipayError::invalid(
            "app-id",
            "the sandbox has no Alipay merchant app configured",
        )));
    };
    let app_id = get("app_id")
        .ok_or_else(|| unsigned(AlipayError::missing("app-id", "app_id is required")))?;
    if app_id != account.app_id {
        return Err(unsigned(AlipayError::invalid(
            "app-id",
            format!("unknown app_id {app_id}"),
        )));
    }
    let method_name = get("method")
        .ok_or_else(|| signed(AlipayError::missing("method", "method is required")))?;
    let method = AlipayMethod::parse(method_name).ok_or_else(|| {
        signed(AlipayError::invalid(
            "method",
            format!("no such method: {method_name}"),
        ))
    })?;
    let charset = get("charset")
        .ok_or_else(|| signed(AlipayError::missing("charset", "charset is required")))?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return Err(signed(AlipayError::invalid(
            "charset",
            "the sandbox accepts charset=utf-8 only",
        )));
    }
    if let Some(format) = get("format") {
        if !format.eq_ignore_ascii_case("JSON") {
            return Err(signed(AlipayError::invalid(
                "format",
                "format must be JSON",
            )));
        }
    }
    let sign_type = get("sign_type").ok_or_else(|| {
        signed(AlipayError::missing(
            "signature-type",
            "sign_type is required",
        ))
    })?;
    if sign_type != "RSA2" {
        return Err(signed(AlipayError::invalid(
            "signature-type",
            "sign_type must be RSA2",
        )));
    }
    let signature =
        get("sign").ok_or_else(|| signed(AlipayError::missing("signature", "sign is required")))?;
    let timestamp = get("timestamp")
        .ok_or_else(|| signed(AlipayError::missing("timestamp", "timestamp is required")))?;
    if !super::wire::is_timestamp(timestamp) {
        return Err(signed(AlipayError::invalid(
            "timestamp",
            "timestamp must be yyyy-MM-dd HH:mm:ss",
        )));
    }
    let version = get("version")
        .ok_or_else(|| signed(AlipayError::missing("version", "version is required")))?;
    if version != "1.0" {
        return Err(signed(AlipayError::invalid(
            "version",
            "version must be 1.0",
        )));
    }

    // Everything but `sign` is signed, `sign_type` included; empty values are left out.
    let text = sign::string_to_sign(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &["sign"],
    );
    let verified = match ctx.keys.public(&account.app_public_key_pem) {
        Ok(key) => sign::verify(&key, &text, signature),
        Err(e) => {
            tracing::warn!(error = %e, "alipay: the app public key in the sandbox state is unusable");
            false
        }
    };
    if !verified {
        // Like Alipay, say which string the signature was checked against: it is the first
        // thing to compare when a gateway's signing is wrong.
        return Err(signed(AlipayError::invalid(
            "signature",
            format!(
                "the signature does not verify with the app public key; string checked: {text}"
            ),
        )));
    }
    let biz_content = get("biz_content")
        .ok_or_else(|| {
            signed(AlipayError::missing(
                "biz-content",
                "biz_content is required",
            ))
        })?
        .to_owned();
    Ok(AlipayRequest {
        method,
        notify_url: get("notify_url").map(str::to_owned),
        biz_content,
        account,
    })
}

/// The endpoint.
pub(crate) async fn gateway(
    State(ctx): State<AlipayContext>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let params = collect_params(query.as_deref(), &body);
    let request = match check_envelope(&ctx, &params) {
        Ok(request) => request,
        Err(rejected) => {
            let account = if rejected.signed {
                AlipayAccount::of(&ctx.sandbox)
            } else {
                None
            };
            return envelope(
                &ctx,
                "error_response",
                &rejected.error.to_json(),
                account.as_ref(),
            );
        }
    };
    match trade::dispatch(&ctx, &request) {
        AlipayReply::Answer(answer) => {
            let body = answer.unwrap_or_else(|error| error.to_json());
            envelope(
                &ctx,
                &request.method.response_key(),
                &body,
                Some(&request.account),
            )
        }
        AlipayReply::Silence => {
            // The payment went through (or not) but the answer never comes: the caller must
            // time out and query. Bounded, so the connection is closed eventually.
            tokio::time::sleep(StdDuration::from_secs(120)).await;
            (StatusCode::GATEWAY_TIMEOUT, Body::empty()).into_response()
        }
    }
}

/// Writes `{"<key>":<body>,"sign":"…"}`. The `*_response` value is serialised once and that
/// very text is both signed and spliced into the answer, so what the signature covers is
/// byte for byte what the gateway extracts. Unsigned when `signer` is `None`.
fn envelope(
    ctx: &AlipayContext,
    key: &str,
    body: &Map<String, Value>,
    signer: Option<&AlipayAccount>,
) -> Response {
    let amountless = ctx
        .sandbox
        .take_amountless(Wallet::Alipay, body.contains_key("total_amount"));
    let inner = if amountless {
        let mut without = body.clone();
        without.remove("total_amount");
        serde_json::to_string(&without)
    } else {
        serde_json::to_string(body)
    }
    .unwrap_or_else(|_| "{}".to_owned());
    let mut text = format!("{{\"{key}\":{inner}");
    if let Some(account) = signer {
        match ctx
            .keys
            .private(&account.alipay_private_key_pem)
            .and_then(|k| sign::sign(&k, &inner))
        {
            Ok(mut signature) => {
                if ctx
                    .sandbox
                    .take_fault(Wallet::Alipay, |f| &mut f.bad_signature_next)
                {
                    signature = sign::forge(&signature);
                }
                text.push_str(",\"sign\":");
                text.push_str(&Value::from(signature).to_string());
            }
            Err(e) => {
                tracing::warn!(error = %e, "alipay: cannot sign the answer; sending it unsigned")
            }
        }
    }
    text.push('}');
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        text,
    )
        .into_response()
}
