//! The till's page shell: the header (merchant, operator, the screens, the language switch,
//! sign-out), the stylesheet and script (served as static files, no build step), and the
//! pieces several screens share.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use qrgate_engine::TillSession;

use super::i18n::{Lang, Locale};

pub const CSS: &str = include_str!("till.css");
pub const JS: &str = include_str!("till.js");

/// One screen of the till.
pub struct Page<'a> {
    pub locale: Locale,
    pub title: String,
    /// The signed-in till, for the header; `None` on the sign-in screen.
    pub session: Option<&'a TillSession>,
    pub status: StatusCode,
    pub cookies: Vec<String>,
    /// A page for paper: no header.
    pub bare: bool,
    /// Late payments to show above the page (`late.rs`), rendered by the caller.
    pub late: Option<Markup>,
    /// The open order this page shows, cancelled by signing out from it.
    pub open_order: Option<String>,
}

impl<'a> Page<'a> {
    pub fn new(locale: Locale, title: impl Into<String>, session: Option<&'a TillSession>) -> Self {
        Page {
            locale,
            title: title.into(),
            session,
            status: StatusCode::OK,
            cookies: Vec::new(),
            bare: false,
            late: None,
            open_order: None,
        }
    }

    /// Shows these late payments above the page.
    pub fn late(mut self, late: Markup) -> Self {
        self.late = Some(late);
        self
    }

    /// The open order on this page: signing out from it cancels it.
    pub fn open_order(mut self, order_id: String) -> Self {
        self.open_order = Some(order_id);
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn render(self, uri: &Uri, body: Markup) -> Response {
        let lang = self.locale.lang;
        let other = lang.other();
        let markup = html! {
            (DOCTYPE)
            html lang=(lang.html_lang()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · " (lang.pick("qrgate till", "qrgate 收银台")) }
                    link rel="stylesheet" href="/pos/assets/till.css";
                    script src="/pos/assets/till.js" defer {}
                }
                body {
                    @if !self.bare {
                        header.bar {
                            @if let Some(s) = self.session {
                                span.who {
                                    span #merchant-name { (s.merchant.name) }
                                    small #operator {
                                        span.visually-hidden { (lang.pick("Operator", "收银员")) " " }
                                        (s.operator.name) " · " (s.operator.id)
                                    }
                                }
                                nav aria-label=(lang.pick("Till", "收银台")) {
                                    a #nav-sale href="/pos" { (lang.pick("New sale", "新交易")) }
                                    a #nav-today href="/pos/today" { (lang.pick("Today", "今日交易")) }
                                }
                            } @else {
                                span.who { (lang.pick("qrgate till", "qrgate 收银台")) }
                            }
                            a.lang href=(lang_link(uri, other)) lang=(other.html_lang())
                                hreflang=(other.html_lang()) { (other.own_name()) }
                            @if let Some(s) = self.session {
                                form method="post" action="/pos/sign-out" {
                                    input type="hidden" name="csrf" value=(s.csrf_token);
                                    @if let Some(order_id) = &self.open_order {
                                        input type="hidden" name="order_id" value=(order_id);
                                    }
                                    button.link #sign-out type="submit" { (lang.pick("Sign out", "退出")) }
                                }
                            }
                        }
                    }
                    @if let (Some(s), false) = (self.session, self.bare) {
                        // Filled and kept up to date by the script (`/pos/late-payments`).
                        div #late-payments data-url="/pos/late-payments" data-csrf=(s.csrf_token) {
                            @if let Some(late) = &self.late { (late) }
                        }
                    }
                    main { (body) }
                }
            }
        };
        let mut response = (self.status, markup).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for cookie in self.locale.set_cookie().into_iter().chain(self.cookies) {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }
}

/// This page in the other language: the same path and query with `lang` replaced.
fn lang_link(uri: &Uri, lang: Lang) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k != "lang" {
                query.append_pair(&k, &v);
            }
        }
    }
    query.append_pair("lang", lang.code());
    format!("{}?{}", uri.path(), query.finish())
}

/// A message the cashier must notice, announced by screen readers.
pub fn notice(kind: &str, id: &str, title: &str, detail: &str) -> Markup {
    html! {
        div class={ "notice " (kind) } id=(id) role="alert" {
            p.title { (title) }
            @if !detail.is_empty() { p { (detail) } }
        }
    }
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2 contrast ratio of two `#rrggbb` colours (floats are fine: colour, not money).
    fn contrast(a: &str, b: &str) -> f64 {
        fn luminance(hex: &str) -> f64 {
            let channel = |i: usize| {
                let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
                if v <= 0.039_28 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
        }
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn every_text_colour_pair_of_the_stylesheet_is_readable() {
        // (text, background) as in till.css.
        let pairs = [
            ("#111111", "#ffffff"),
            ("#ffffff", "#1f2937"),
            ("#ffffff", "#0a4fb4"),
            ("#111111", "#e4e4e4"),
            ("#111111", "#f0f0f0"),
            ("#111111", "#f3f4f6"),
            ("#000000", "#07c160"),
            ("#ffffff", "#0f62d6"),
            ("#ffffff", "#c4000e"),
            ("#ffffff", "#b3261e"),
            ("#5c0f0a", "#fdecec"),
            ("#0b2a5c", "#eef3fb"),
            ("#0d3d18", "#e8f6ec"),
            ("#555555", "#ffffff"),
            ("#555555", "#f3f4f6"),
            ("#0a4fb4", "#ffffff"),
        ];
        for (text, background) in pairs {
            assert!(
                contrast(text, background) >= 4.5,
                "{text} on {background}: {:.2}",
                contrast(text, background)
            );
        }
        // Big marks (a tick, a cross) need 3:1 against their background.
        assert!(contrast("#1e7b34", "#e8f6ec") >= 3.0);
        assert!(contrast("#b3261e", "#fdecec") >= 3.0);
    }

    #[test]
    fn the_language_switch_keeps_the_rest_of_the_query() {
        let uri: Uri = "/pos/orders/T1/receipt?paper=58&lang=en".parse().unwrap();
        assert_eq!(
            lang_link(&uri, Lang::Zh),
            "/pos/orders/T1/receipt?paper=58&lang=zh"
        );
    }
}
