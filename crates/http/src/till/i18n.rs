//! The till's two languages, how a request picks one, and amounts and times as the cashier
//! reads them. Text is written where it is used as an English/Chinese pair
//! (`lang.pick("Amount", "金额")`), so both versions of a screen are read side by side; the
//! sentences several screens share are functions here.

use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use qrgate_domain::{Currency, DeclineReason, MerchantTimeZone, Money, OrderStatus, Wallet};

/// The cookie that keeps the language chosen with `?lang=`.
pub const LANG_COOKIE: &str = "qrgate_till_lang";

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

    pub fn pick(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language's own name, for the switch.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }
}

/// The language of a request: `?lang=` (saved in a cookie by the response), else the cookie,
/// else the browser's `Accept-Language`, else English.
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

    /// The `Set-Cookie` value keeping a language chosen with `?lang=`.
    pub fn set_cookie(&self) -> Option<String> {
        self.chosen_now.then(|| {
            format!(
                "{LANG_COOKIE}={}; Path=/pos; Max-Age=31536000; SameSite=Lax",
                self.lang.code()
            )
        })
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

/// English or Chinese, whichever the browser prefers (`q` weights, then order).
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

/// A `q` value in thousandths, read without floating point.
fn q_thousandths(q: &str) -> Option<u32> {
    let (whole, fraction) = q.trim().split_once('.').unwrap_or((q.trim(), ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<3}").parse().ok()?;
    let value = whole * 1000 + fraction;
    (value <= 1000).then_some(value)
}

fn symbol(lang: Lang, currency: Currency) -> &'static str {
    match (currency, lang) {
        (Currency::Cny, _) => "¥",
        (Currency::Cad, _) => "CA$",
        (Currency::Usd, Lang::En) => "$",
        (Currency::Usd, Lang::Zh) => "US$",
    }
}

/// An amount as the locale writes it: `CA$1,234.50`, `¥52.00`, `US$3.50` in Chinese.
pub fn money(lang: Lang, m: Money) -> String {
    let minor = m.minor();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}{}.{:02}",
        symbol(lang, m.currency()),
        grouped(abs / 100),
        abs % 100
    )
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

/// Reads an amount typed in major units (`12`, `12.5`, `12.50`; a comma is taken for the
/// point) into minor units. `None` for anything else; an empty field is zero.
pub fn parse_amount(text: &str) -> Option<i64> {
    let text = text.trim().replace(',', ".");
    if text.is_empty() {
        return Some(0);
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.len() > 9
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || (whole.is_empty() && fraction.is_empty())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(fraction)
}

/// A time in the merchant's zone: `26 Nov 2026, 14:05` or `2026年11月26日 14:05`.
pub fn time(lang: Lang, tz: MerchantTimeZone, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tz.tz());
    match lang {
        Lang::En => local.format("%-d %b %Y, %H:%M").to_string(),
        Lang::Zh => local.format("%Y年%-m月%-d日 %H:%M").to_string(),
    }
}

/// A time of day in the merchant's zone, for today's list: `14:05:09`.
pub fn clock(tz: MerchantTimeZone, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz.tz()).format("%H:%M:%S").to_string()
}

/// For `<time datetime>`.
pub fn iso_time(tz: MerchantTimeZone, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz.tz())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

pub fn wallet_name(lang: Lang, wallet: Wallet) -> &'static str {
    match wallet {
        Wallet::WechatPay => lang.pick("WeChat Pay", "微信支付"),
        Wallet::Alipay => lang.pick("Alipay", "支付宝"),
        Wallet::UnionPay => lang.pick("UnionPay", "银联云闪付"),
    }
}

/// An order's state in a word or two, for lists.
pub fn status_name(lang: Lang, status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Paying | OrderStatus::Unknown => lang.pick("Checking", "确认中"),
        OrderStatus::Pending => lang.pick("Waiting for customer", "等待顾客"),
        OrderStatus::Reversing => lang.pick("Cancelling", "撤销中"),
        OrderStatus::Paid => lang.pick("Paid", "已支付"),
        OrderStatus::Failed => lang.pick("Failed", "失败"),
        OrderStatus::Reversed => lang.pick("Reversed, not charged", "已撤销，未扣款"),
        OrderStatus::Closed => lang.pick("Closed, not charged", "已关闭，未扣款"),
    }
}

/// A declined payment's reason, as the cashier acts on it.
pub fn decline_text(lang: Lang, reason: DeclineReason) -> &'static str {
    match reason {
        DeclineReason::CodeExpired => lang.pick(
            "The payment code expired: ask the customer to refresh it and scan again.",
            "付款码已过期：请顾客刷新付款码后重新扫码。",
        ),
        DeclineReason::CodeInvalid => lang.pick(
            "The payment code is invalid or was already used: ask the customer to refresh it and scan again.",
            "付款码无效或已使用：请顾客刷新付款码后重新扫码。",
        ),
        DeclineReason::InsufficientBalance => lang.pick(
            "Insufficient balance: ask the customer to choose another card or pay another way.",
            "余额不足：请顾客更换银行卡或使用其他方式付款。",
        ),
        DeclineReason::WalletUnavailable => lang.pick(
            "The wallet could not be reached. Nothing was charged: try again.",
            "无法连接钱包。未扣款，请重试。",
        ),
        DeclineReason::Credentials => lang.pick(
            "The gateway's wallet account was refused. Nothing was charged: call your provider.",
            "网关的钱包账户被拒绝。未扣款，请联系服务商。",
        ),
        DeclineReason::Other => lang.pick(
            "The wallet declined the payment. Nothing was charged.",
            "钱包拒绝了此笔支付。未扣款。",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_query_beats_the_cookie_which_beats_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_LANGUAGE, "zh-CN,zh;q=0.9,en;q=0.8".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::Zh);
        headers.insert(COOKIE, "a=b; qrgate_till_lang=en".parse().unwrap());
        assert_eq!(Locale::from_parts(None, &headers).lang, Lang::En);
        let chosen = Locale::from_parts(Some("x=1&lang=zh"), &headers);
        assert_eq!(chosen.lang, Lang::Zh);
        assert!(chosen
            .set_cookie()
            .unwrap()
            .starts_with("qrgate_till_lang=zh;"));
        assert_eq!(Locale::from_parts(None, &HeaderMap::new()).lang, Lang::En);
        assert_eq!(
            from_accept_language("fr, en;q=0.5, zh;q=0.7"),
            Some(Lang::Zh)
        );
    }

    #[test]
    fn amounts_are_written_for_the_locale_and_read_back() {
        assert_eq!(
            money(Lang::En, Money::new(123_450, Currency::Cad)),
            "CA$1,234.50"
        );
        assert_eq!(money(Lang::Zh, Money::new(5200, Currency::Cny)), "¥52.00");
        assert_eq!(money(Lang::Zh, Money::new(350, Currency::Usd)), "US$3.50");
        assert_eq!(money(Lang::En, Money::new(350, Currency::Usd)), "$3.50");
        assert_eq!(parse_amount("12.5"), Some(1250));
        assert_eq!(parse_amount(" 12,05 "), Some(1205));
        assert_eq!(parse_amount("7"), Some(700));
        assert_eq!(parse_amount(".5"), Some(50));
        assert_eq!(parse_amount(""), Some(0));
        for bad in ["1.234", "abc", "1.2.3", "-1", ".", "1e3", "9999999999"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_are_shown_in_the_merchants_zone() {
        let tz: MerchantTimeZone = "America/Toronto".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 26, 20, 5, 9).unwrap();
        assert_eq!(time(Lang::En, tz, at), "26 Nov 2026, 15:05");
        assert_eq!(time(Lang::Zh, tz, at), "2026年11月26日 15:05");
        assert_eq!(clock(tz, at), "15:05:09");
        assert_eq!(iso_time(tz, at), "2026-11-26T15:05:09-05:00");
    }
}
