//! The phone's look: one page layout (viewport, language switch, the wallet's colours), the
//! wallets' names, and the pieces several screens share. Colours only, never logos; each
//! pair of text and background colours has a contrast of at least 4.5:1 (tested below).

use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::locale::{Lang, Locale};
use crate::model::Wallet;

/// The colours of one wallet app, as CSS values.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    /// The header.
    pub bar: &'static str,
    pub on_bar: &'static str,
    /// Main buttons.
    pub button: &'static str,
    pub on_button: &'static str,
    /// A light tint behind cards.
    pub tint: &'static str,
}

/// WeChat green (with dark text: white on that green is hard to read), Alipay blue (darkened
/// a little for white text), UnionPay red with its teal for buttons; grey when no wallet is
/// chosen.
pub fn theme(wallet: Option<Wallet>) -> Theme {
    match wallet {
        Some(Wallet::Wechat) => Theme {
            bar: "#07c160",
            on_bar: "#000000",
            button: "#07c160",
            on_button: "#000000",
            tint: "#eefaf3",
        },
        Some(Wallet::Alipay) => Theme {
            bar: "#0f62d6",
            on_bar: "#ffffff",
            button: "#0f62d6",
            on_button: "#ffffff",
            tint: "#edf4fe",
        },
        Some(Wallet::Unionpay) => Theme {
            bar: "#d7000f",
            on_bar: "#ffffff",
            button: "#00747a",
            on_button: "#ffffff",
            tint: "#eef7f7",
        },
        None => Theme {
            bar: "#333333",
            on_bar: "#ffffff",
            button: "#333333",
            on_button: "#ffffff",
            tint: "#f3f3f3",
        },
    }
}

/// The wallet app's name (text only).
pub fn wallet_name(lang: Lang, wallet: Wallet) -> &'static str {
    match wallet {
        Wallet::Wechat => lang.pick("WeChat Pay", "微信支付"),
        Wallet::Alipay => lang.pick("Alipay", "支付宝"),
        Wallet::Unionpay => lang.pick("UnionPay", "云闪付"),
    }
}

/// One screen of the phone.
pub struct Page {
    pub locale: Locale,
    pub title: String,
    pub wallet: Option<Wallet>,
    pub status: StatusCode,
    /// Reload the page after this many seconds (the pay-by-code screen's new code).
    pub refresh_secs: Option<i64>,
    /// More `Set-Cookie` values.
    pub cookies: Vec<String>,
}

impl Page {
    pub fn new(locale: Locale, title: impl Into<String>, wallet: Option<Wallet>) -> Page {
        Page {
            locale,
            title: title.into(),
            wallet,
            status: StatusCode::OK,
            refresh_secs: None,
            cookies: Vec::new(),
        }
    }

    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    /// Renders the screen; `uri` is this request's, for the language switch's link.
    pub fn render(self, uri: &Uri, body: Markup) -> Response {
        let lang = self.locale.lang;
        let t = theme(self.wallet);
        let other = lang.other();
        let app = self
            .wallet
            .map(|w| wallet_name(lang, w))
            .unwrap_or(lang.pick("Sandbox phone", "沙箱手机"));
        let markup = html! {
            (DOCTYPE)
            html lang=(lang.html_lang()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(secs) = self.refresh_secs {
                        meta http-equiv="refresh" content=(secs.max(1));
                    }
                    meta name="theme-color" content=(t.bar);
                    title { (self.title) " · " (app) }
                    style { (PreEscaped(css(&t))) }
                }
                body {
                    header.bar {
                        span.app { (app) }
                        a.lang href=(lang_link(uri, other)) lang=(other.html_lang())
                            hreflang=(other.html_lang()) { (other.own_name()) }
                    }
                    main { (body) }
                }
            }
        };
        let mut response = (self.status, markup).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let cookies = self.locale.set_cookie().into_iter().chain(self.cookies);
        for cookie in cookies {
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

/// A URL with a query string built safely from pairs.
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    format!("{path}?{}", query.finish())
}

/// A message the customer must notice (errors, results), announced by screen readers.
pub fn alert(kind: &str, title: &str, detail: &str) -> Markup {
    html! {
        div class={ "notice " (kind) } role="alert" {
            p.notice-title { (title) }
            @if !detail.is_empty() { p { (detail) } }
        }
    }
}

fn css(t: &Theme) -> String {
    format!(
        ":root{{--bar:{bar};--on-bar:{on_bar};--button:{button};--on-button:{on_button};\
         --tint:{tint}}}\
         *{{box-sizing:border-box}}\
         body{{margin:0;font:1.05rem/1.5 system-ui,-apple-system,'Noto Sans CJK SC',\
         'PingFang SC',sans-serif;color:#111;background:#fff}}\
         .bar{{display:flex;justify-content:space-between;align-items:center;gap:1rem;\
         background:var(--bar);color:var(--on-bar);padding:.75rem 1rem;min-height:3.5rem}}\
         .bar .app{{font-weight:700;font-size:1.15rem}}\
         .bar a{{color:var(--on-bar);font-weight:600;padding:.6rem .4rem;min-height:2.75rem;\
         display:inline-flex;align-items:center}}\
         main{{max-width:28rem;margin:0 auto;padding:1rem}}\
         h1{{font-size:1.4rem;margin:.5rem 0 1rem}} h2{{font-size:1.1rem;margin:1.5rem 0 .5rem}}\
         a{{color:#0b4fa8}}\
         :focus-visible{{outline:3px solid #111;outline-offset:2px}}\
         .card{{background:var(--tint);border-radius:.75rem;padding:1rem;margin:0 0 1rem}}\
         .balance{{font-size:2rem;font-weight:700;margin:0}}\
         .amount{{font-size:2.2rem;font-weight:700;margin:.25rem 0}}\
         .muted{{color:#555}}\
         .button,button{{display:flex;align-items:center;justify-content:center;width:100%;\
         min-height:3.25rem;margin:.5rem 0;padding:.5rem 1rem;border:0;border-radius:.6rem;\
         background:var(--button);color:var(--on-button);font:inherit;font-weight:700;\
         text-decoration:none;cursor:pointer}}\
         .button.secondary,button.secondary{{background:#e4e4e4;color:#111}}\
         .actions{{display:grid;grid-template-columns:1fr 1fr;gap:.75rem}}\
         label{{display:block;font-weight:600;margin:.75rem 0 .25rem}}\
         input,select{{width:100%;min-height:3rem;font:inherit;padding:.5rem .75rem;\
         border:2px solid #767676;border-radius:.5rem;background:#fff;color:#111}}\
         input.pin{{font-size:1.8rem;letter-spacing:.6rem;text-align:center}}\
         .pad{{display:grid;grid-template-columns:repeat(3,1fr);gap:.5rem;margin:.75rem 0}}\
         .pad button{{margin:0;min-height:3.75rem;font-size:1.5rem;background:#f0f0f0;\
         color:#111;border:1px solid #c4c4c4}}\
         .notice{{border-radius:.6rem;padding:.75rem 1rem;margin:0 0 1rem;border:2px solid}}\
         .notice-title{{font-weight:700;font-size:1.2rem;margin:0}}\
         .notice p{{margin:.25rem 0}}\
         .ok{{background:#e8f6ec;border-color:#1e7b34;color:#0d3d18}}\
         .error{{background:#fdecec;border-color:#b3261e;color:#5c0f0a}}\
         .movements{{list-style:none;padding:0;margin:0}}\
         .movements li{{display:flex;justify-content:space-between;gap:1rem;padding:.6rem 0;\
         border-bottom:1px solid #ddd}}\
         .movements .what{{font-weight:600}} .movements .amt{{font-weight:700;white-space:nowrap}}\
         .plus{{color:#1e6b2f}}\
         .code-box{{background:#fff;border:1px solid #ccc;border-radius:.75rem;padding:1rem;\
         text-align:center}}\
         svg.barcode{{width:100%;height:6rem;display:block}}\
         svg.qr{{width:min(14rem,70vw);height:auto;display:block;margin:1rem auto 0}}\
         .digits{{font:700 1.15rem/1.4 ui-monospace,monospace;letter-spacing:.03em;\
         margin:.5rem 0 0;white-space:nowrap}}\
         .wallets{{display:flex;gap:.5rem;margin:0 0 1rem}}\
         .wallets a{{flex:1;display:flex;align-items:center;justify-content:center;\
         text-align:center;padding:.6rem .25rem;border-radius:.5rem;border:2px solid #767676;\
         color:#111;text-decoration:none;min-height:2.75rem;line-height:1.2}}\
         .wallets a[aria-current=page]{{background:var(--bar);color:var(--on-bar);\
         border-color:var(--bar);font-weight:700}}\
         .people{{list-style:none;padding:0}} .people li{{margin:0 0 1rem}}",
        bar = t.bar,
        on_bar = t.on_bar,
        button = t.button,
        on_button = t.on_button,
        tint = t.tint,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WCAG 2 contrast ratio of two `#rrggbb` colours (floating point is fine here: this is
    /// colour, not money).
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
    fn every_theme_keeps_text_readable() {
        for wallet in [
            None,
            Some(Wallet::Wechat),
            Some(Wallet::Alipay),
            Some(Wallet::Unionpay),
        ] {
            let t = theme(wallet);
            assert!(contrast(t.bar, t.on_bar) >= 4.5, "{wallet:?} bar");
            assert!(contrast(t.button, t.on_button) >= 4.5, "{wallet:?} button");
            assert!(contrast(t.tint, "#111111") >= 4.5, "{wallet:?} tint");
            assert!(contrast(t.tint, "#555555") >= 4.5, "{wallet:?} muted");
        }
    }

    #[test]
    fn the_language_switch_keeps_the_rest_of_the_query() {
        let uri: Uri = "/phone/c0001?wallet=alipay&lang=en".parse().unwrap();
        assert_eq!(
            lang_link(&uri, Lang::Zh),
            "/phone/c0001?wallet=alipay&lang=zh"
        );
        let uri: Uri = "/phone".parse().unwrap();
        assert_eq!(lang_link(&uri, Lang::En), "/phone?lang=en");
    }
}
