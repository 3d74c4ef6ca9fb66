//! How a refused or failed use case is answered: a page that says what happened and that
//! nothing was changed. Not found and not visible are the same 404, so that ids of other
//! merchants are not confirmed.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::html;
use qrgate_engine::{ConsoleError, RefundError};

use crate::auth::Ctx;
use crate::i18n::{Lang, Locale};
use crate::layout::{notice, Page};
use crate::ConsoleState;

/// The answer to `error` on a page of `ctx`.
pub fn page(ctx: &Ctx, uri: &Uri, error: ConsoleError) -> Response {
    let l = ctx.locale.lang;
    let (status, title, detail) = describe(l, &error);
    Page::of(ctx, title.clone(), crate::layout::Section::None)
        .status(status)
        .render(
            uri,
            html! {
                h1 { (title) }
                (notice("error", "error", &title, &detail))
                p { a.button.secondary href="/console" { (l.t("back-to-console")) } }
            },
        )
}

/// The message of a refused input (a broken rule), in `l`, for the form that sent it; any
/// other error is given back, for [`page`].
pub fn refusal(l: Lang, error: ConsoleError) -> Result<String, ConsoleError> {
    match error {
        ConsoleError::Invalid(m) => Ok(m),
        ConsoleError::Rule(rule) => Ok(l.ta(rule.id(), &rule.args())),
        other => Err(other),
    }
}

/// Status, title and detail of an error, in `l`.
pub fn describe(l: Lang, error: &ConsoleError) -> (StatusCode, String, String) {
    match error {
        ConsoleError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            l.t("not-found"),
            l.t("not-found-detail"),
        ),
        ConsoleError::Forbidden => (
            StatusCode::FORBIDDEN,
            l.t("forbidden"),
            l.t("forbidden-detail"),
        ),
        ConsoleError::Invalid(m) => (StatusCode::BAD_REQUEST, l.t("invalid"), m.clone()),
        ConsoleError::Rule(rule) => (
            StatusCode::BAD_REQUEST,
            l.t("invalid"),
            l.ta(rule.id(), &rule.args()),
        ),
        ConsoleError::Busy => (StatusCode::TOO_MANY_REQUESTS, l.t("busy"), String::new()),
        ConsoleError::Refund(e) => {
            let detail = match e {
                RefundError::Exceeds { refundable, .. } => {
                    l.ta("refund-exceeds", &[("refundable", refundable.to_string())])
                }
                RefundError::NotPaid { .. } => l.t("refund-not-paid"),
                RefundError::NotEnabled(_) => l.t("refund-not-enabled"),
                RefundError::OrderUsed(_) => l.t("refund-id-used"),
                other => other.to_string(),
            };
            (StatusCode::BAD_REQUEST, l.t("refund-refused"), detail)
        }
        ConsoleError::Engine(e) => {
            tracing::error!(error = %e, "console use case failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                l.t("unavailable"),
                l.t("unavailable-detail"),
            )
        }
    }
}

/// Unknown paths under `/console`.
pub async fn not_found_page(
    State(_state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let l = locale.lang;
    Page::new(locale, l.t("not-found"))
        .status(StatusCode::NOT_FOUND)
        .render(
            &uri,
            html! {
                h1 { (l.t("not-found")) }
                p { (l.t("not-found-detail")) }
                p { a href="/console" { (l.t("back-to-console")) } }
            },
        )
}
