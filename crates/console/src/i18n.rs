//! The console's two languages, with Fluent (`locales/en.ftl`, `locales/zh.ftl`, compiled
//! in): how a request picks one, and messages, amounts and times as people read them.
//! A message missing from a language shows its id and logs a warning; a test checks that
//! both files have the same ids and that every id the code uses exists.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use qrgate_domain::{MerchantTimeZone, Money};

const EN: &str = include_str!("../locales/en.ftl");
const ZH: &str = include_str!("../locales/zh.ftl");

/// The cookie that keeps the language chosen with `?lang=`.
pub const LANG_COOKIE: &str = "qrgate_console_lang";

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

    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        static EN_BUNDLE: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
        static ZH_BUNDLE: OnceLock<FluentBundle<FluentResource>> = OnceLock::new();
        match self {
            Lang::En => EN_BUNDLE.get_or_init(|| bundle("en", EN)),
            Lang::Zh => ZH_BUNDLE.get_or_init(|| bundle("zh-CN", ZH)),
        }
    }

    /// The message `id` in this language.
    pub fn t(self, id: &str) -> String {
        self.format(id, None)
    }

    /// The message `id` with its arguments.
    pub fn ta(self, id: &str, args: &[(&str, String)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, FluentValue::from(v.clone()));
        }
        self.format(id, Some(&fa))
    }

    fn format(self, id: &str, args: Option<&FluentArgs>) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::warn!(
                message.id = id,
                lang = self.code(),
                "console message missing"
            );
            return id.to_owned();
        };
        let mut errors = Vec::new();
        let text = bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned();
        if !errors.is_empty() {
            tracing::warn!(
                message.id = id,
                lang = self.code(),
                "console message with errors"
            );
        }
        text
    }

    /// An amount as people read it: `12.34 CAD`.
    pub fn money(self, m: Money) -> String {
        m.to_string()
    }

    /// A time in the merchant's zone: `2026-01-05 14:03:09`.
    pub fn time(self, at: DateTime<Utc>, tz: MerchantTimeZone) -> String {
        at.with_timezone(&tz.tz())
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }
}

fn bundle(lang: &str, source: &str) -> FluentBundle<FluentResource> {
    let id: unic_langid::LanguageIdentifier = lang.parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Unicode isolation marks would show up in attribute values and tests.
    bundle.set_use_isolating(false);
    let resource = match FluentResource::try_new(source.to_owned()) {
        Ok(r) => r,
        Err((r, errors)) => {
            tracing::error!(lang, errors = errors.len(), "console messages do not parse");
            r
        }
    };
    if bundle.add_resource(resource).is_err() {
        tracing::error!(lang, "console messages defined twice");
    }
    bundle
}

/// The ids of the messages in a `.ftl` source (for the test that both languages match).
pub fn message_ids(lang: Lang) -> BTreeSet<String> {
    let source = match lang {
        Lang::En => EN,
        Lang::Zh => ZH,
    };
    // A message starts a line with its id and ` =`; comments, terms (`-x`) and continuation
    // lines (indented) do not.
    source
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter_map(|line| line.split_once('=').map(|(id, _)| id.trim().to_owned()))
        .collect()
}

/// A request's language: `?lang=` (kept in a cookie by the response), else the cookie, else
/// the browser's `Accept-Language`, else English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    pub lang: Lang,
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
        let from_cookie = cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v));
        let from_header = || {
            headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split(',')
                        .find_map(|part| Lang::parse(part.split(';').next()?))
                })
        };
        Locale {
            lang: from_cookie.or_else(from_header).unwrap_or(Lang::En),
            chosen_now: false,
        }
    }

    /// The cookie to set when the language was chosen with `?lang=`.
    pub fn set_cookie(self) -> Option<String> {
        self.chosen_now.then(|| {
            format!(
                "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; SameSite=Lax",
                self.lang.code()
            )
        })
    }
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_the_same_messages() {
        let en = message_ids(Lang::En);
        let zh = message_ids(Lang::Zh);
        assert!(en.len() > 50, "{}", en.len());
        let only_en: Vec<_> = en.difference(&zh).collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        assert!(only_en.is_empty(), "missing in zh.ftl: {only_en:?}");
        assert!(only_zh.is_empty(), "missing in en.ftl: {only_zh:?}");
    }

    #[test]
    fn every_message_the_code_uses_exists() {
        let en = message_ids(Lang::En);
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut used = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for marker in [".t(\"", ".ta(\""] {
                for piece in source.split(marker).skip(1) {
                    if let Some(id) = piece.split('"').next() {
                        used.insert(id.to_owned());
                    }
                }
            }
        }
        assert!(used.len() > 50, "{}", used.len());
        let missing: Vec<_> = used.iter().filter(|id| !en.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "used but not in the .ftl files: {missing:?}"
        );
    }

    #[test]
    fn every_rule_of_the_engine_reads_in_both_languages() {
        let rules = qrgate_engine::ConsoleRule::samples();
        assert!(rules.len() >= 15, "{}", rules.len());
        for lang in [Lang::En, Lang::Zh] {
            let ids = message_ids(lang);
            for rule in &rules {
                assert!(ids.contains(rule.id()), "{} missing in {lang:?}", rule.id());
                let text = lang.ta(rule.id(), &rule.args());
                for (name, value) in rule.args() {
                    assert!(
                        text.contains(&value),
                        "{}: ${name} not shown in {text}",
                        rule.id()
                    );
                }
            }
        }
        // The English page says what the engine says.
        for rule in &rules {
            let page = Lang::En.ta(rule.id(), &rule.args());
            let engine = rule.to_string();
            assert_eq!(
                page.trim_end_matches('.').to_lowercase(),
                engine.to_lowercase(),
                "{}",
                rule.id()
            );
        }
    }

    #[test]
    fn every_message_formats_in_both_languages() {
        for lang in [Lang::En, Lang::Zh] {
            for id in message_ids(lang) {
                let text = lang.t(&id);
                assert!(!text.is_empty(), "{id}");
            }
        }
    }

    #[test]
    fn the_query_beats_the_cookie_which_beats_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::Zh);
        headers.insert(COOKIE, "qrgate_console_lang=en".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::En);
        assert_eq!(Locale::from_parts(Some("lang=zh"), &headers).lang, Lang::Zh);
    }
}
