//! The phone's two languages, how a request picks one, and amounts and times as a customer in
//! China reads them. Text is written at the call site as an English/Chinese pair
//! (`lang.pick("Balance", "余额")`), so a page's two versions are read side by side.

use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use chrono_tz::Asia::Shanghai;

/// The cookie that keeps the language picked with `?lang=`.
pub const LANG_COOKIE: &str = "qrgate_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s == "en" || s.starts_with("en-") {
            Some(Lang::En)
        } else if s == "zh" || s.starts_with("zh-") {
            Some(Lang::Zh)
        } else {
            None
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `lang` attribute of the page.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The other language, offered by the switch on every page.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The other language's name, written in that language.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }
}

/// The language of a request: `?lang=` (which the response also saves in a cookie), else the
/// cookie, else the browser's `Accept-Language`, else English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    pub lang: Lang,
    /// Chosen by `?lang=` on this request: the response sets the cookie.
    pub chosen_now: bool,
}

impl Locale {
    pub fn from_parts(query: Option<&str>, headers: &HeaderMap) -> Locale {
        let from_query = query.and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "lang")
                .and_then(|(_, v)| Lang::parse(&v))
        });
        if let Some(lang) = from_query {
            return Locale {
                lang,
                chosen_now: true,
            };
        }
        let lang = cookie(headers, LANG_COOKIE)
            .and_then(|v| Lang::parse(&v))
            .or_else(|| {
                headers
                    .get(ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(from_accept_language)
            })
            .unwrap_or(Lang::En);
        Locale {
            lang,
            chosen_now: false,
        }
    }

    /// The `Set-Cookie` value that keeps a language chosen with `?lang=`.
    pub fn set_cookie(&self) -> Option<String> {
        self.chosen_now.then(|| {
            format!(
                "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                self.lang.code()
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Locale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Locale::from_parts(parts.uri.query(), &parts.headers))
    }
}

/// The value of one cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The first of English or Chinese by the browser's preference (`q` weights, then order);
/// `None` when it names neither.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(u32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let Some(lang) = parts.next().and_then(Lang::parse) else {
            continue;
        };
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), q_thousandths);
        let Some(weight) = weight.filter(|w| *w > 0) else {
            continue;
        };
        if best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, lang));
        }
    }
    best.map(|(_, lang)| lang)
}

/// A `q` value (`1`, `0.8`, `0.125`) in thousandths, read without floating point.
fn q_thousandths(q: &str) -> Option<u32> {
    let (whole, fraction) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let padded = format!("{fraction:0<3}");
    let fraction: u32 = padded.parse().ok()?;
    let value = whole * 1000 + fraction;
    (value <= 1000).then_some(value)
}

/// An amount of minor units as the locale writes it: `¥1,052.00`, `CA$10.00`, `US$3.50`.
/// CNY is `¥` in both languages (the phone's customer is in China); other currencies carry
/// their CLDR symbol, and a currency the phone does not know its code.
pub fn money(lang: Lang, minor: i64, currency: &str) -> String {
    let symbol = match (currency, lang) {
        ("CNY", _) => "¥".to_owned(),
        ("CAD", _) => "CA$".to_owned(),
        ("USD", Lang::En) => "$".to_owned(),
        ("USD", Lang::Zh) => "US$".to_owned(),
        (other, _) => format!("{other} "),
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{symbol}{}.{:02}", grouped(abs / 100), abs % 100)
}

/// A movement's amount with its sign always written: `+¥10.00`, `-¥52.00`.
pub fn signed_money(lang: Lang, minor: i64, currency: &str) -> String {
    if minor > 0 {
        format!("+{}", money(lang, minor, currency))
    } else {
        money(lang, minor, currency)
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time in Asia/Shanghai as the locale writes it: `26 Nov 2026, 16:54` or
/// `2026年11月26日 16:54`.
pub fn time(lang: Lang, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&Shanghai);
    match lang {
        Lang::En => local.format("%-d %b %Y, %H:%M").to_string(),
        Lang::Zh => local.format("%Y年%-m月%-d日 %H:%M").to_string(),
    }
}

/// The time as a machine reads it, for `<time datetime>`.
pub fn iso_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Shanghai)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn accept_language_picks_the_preferred_of_english_and_chinese() {
        assert_eq!(
            from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Some(Lang::Zh)
        );
        assert_eq!(from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(
            from_accept_language("fr-FR, en;q=0.5, zh;q=0.7"),
            Some(Lang::Zh)
        );
        assert_eq!(from_accept_language("de, fr"), None);
        assert_eq!(from_accept_language("zh;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(from_accept_language("zh;q=nonsense"), None);
        assert_eq!(from_accept_language(""), None);
    }

    #[test]
    fn the_query_beats_the_cookie_which_beats_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, "zh-CN".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::Zh);
        headers.insert(COOKIE, "a=b; qrgate_lang=en".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::En);
        let chosen = Locale::from_parts(Some("wallet=alipay&lang=zh"), &headers);
        assert_eq!(chosen.lang, Lang::Zh);
        assert!(chosen.set_cookie().unwrap().starts_with("qrgate_lang=zh;"));
        assert_eq!(Locale::from_parts(None, &HeaderMap::new()).lang, Lang::En);
    }

    #[test]
    fn amounts_are_written_for_the_locale() {
        assert_eq!(money(Lang::En, 5200, "CNY"), "¥52.00");
        assert_eq!(money(Lang::Zh, 5200, "CNY"), "¥52.00");
        assert_eq!(money(Lang::En, 1000, "CAD"), "CA$10.00");
        assert_eq!(money(Lang::En, 350, "USD"), "$3.50");
        assert_eq!(money(Lang::Zh, 350, "USD"), "US$3.50");
        assert_eq!(money(Lang::En, 123_456_789, "CNY"), "¥1,234,567.89");
        assert_eq!(money(Lang::En, -5, "CNY"), "-¥0.05");
        assert_eq!(money(Lang::En, 100, "EUR"), "EUR 1.00");
        assert_eq!(signed_money(Lang::En, 1000, "CNY"), "+¥10.00");
        assert_eq!(signed_money(Lang::En, -1000, "CNY"), "-¥10.00");
    }

    #[test]
    fn times_are_shown_in_shanghai() {
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 20, 5, 0).unwrap();
        assert_eq!(time(Lang::En, at), "27 Nov 2026, 04:05");
        assert_eq!(time(Lang::Zh, at), "2026年11月27日 04:05");
        assert_eq!(iso_time(at), "2026-11-27T04:05:00+08:00");
    }
}
