//! Security headers (tower-http's `SetResponseHeaderLayer`).
//!
//! Every response: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, and a Content-Security-Policy that allows nothing
//! (`default-src 'none'; frame-ancestors 'none'`): JSON and text answers load nothing and are
//! never framed.
//!
//! The till's pages (`/pos/*`) get a policy of their own, as strict as the pages allow: their
//! one script and stylesheet from the gateway itself, the receipt's inline `<style>` by hash
//! (no `'unsafe-inline'`), `fetch` to the gateway only (status polling, charging), forms
//! posted to the gateway only, no plugin, no `<base>`, and no framing (clickjacking the
//! refund button). The QR is inline SVG, so no `data:` image is needed.

use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::Router;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of answers that are not pages.
const NOTHING_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The till's policy without the inline styles' hashes.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'{styles}; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The till's Content-Security-Policy, allowing `inline_styles` by their SHA-256.
pub(crate) fn page_policy(inline_styles: &[String]) -> String {
    let hashes: String = inline_styles
        .iter()
        .map(|style| {
            let digest = Sha256::digest(style.as_bytes());
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    PAGE_POLICY.replace("{styles}", &hashes)
}

/// Gives the till's routes their page policy.
pub(crate) fn for_pages<S>(router: Router<S>, inline_styles: &[String]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Hashes and the fixed text are ASCII: the fallback is never used, and would only drop
    // the receipt's layout, never loosen the policy.
    let policy = HeaderValue::from_str(&page_policy(inline_styles))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    router.layer(SetResponseHeaderLayer::overriding(
        CONTENT_SECURITY_POLICY,
        policy,
    ))
}

/// Gives every response the headers that are harmless everywhere; a page's own policy, set
/// further in, is kept.
pub(crate) fn for_every_response<S>(router: Router<S>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(NOTHING_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_policy_allows_inline_styles_only_by_hash() {
        // As browsers compute it: `printf 'a{}' | openssl dgst -sha256 -binary | base64`.
        let policy = page_policy(&["a{}".to_owned()]);
        assert!(
            policy.contains(
                "style-src 'self' 'sha256-X1RutGBrXCt9KkSaXMK7tHftWiRscFHOhxsS8tv8hBk=';"
            ),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
    }
}
