//! Payment codes (what a barcode scanner reads off the customer's phone) and order ids.

use qrgate_ottpay::BizType;
use rand::Rng;

/// The wallet a scanned payment code belongs to, by the wallets' published code formats,
/// or `None` when the code is none of them (then do not send it: every gateway refuses it).
///
/// Surrounding whitespace (the Enter a scanner types) is ignored. The formats:
///
/// | wallet | format |
/// |---|---|
/// | WeChat Pay ([`BizType::WechatPay`]) | 18 digits starting `10` to `15` |
/// | Alipay ([`BizType::Alipay`]) | 16 to 24 digits starting `25` to `30` |
/// | UnionPay ([`BizType::UnionPay`]) | 19 digits starting `62` |
///
/// Only ASCII digits count.
pub fn detect_wallet(auth_code: &str) -> Option<BizType> {
    let code = auth_code.trim();
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix = code.get(..2)?;
    let len = code.len();
    match prefix {
        "10" | "11" | "12" | "13" | "14" | "15" if len == 18 => Some(BizType::WechatPay),
        "25" | "26" | "27" | "28" | "29" | "30" if (16..=24).contains(&len) => {
            Some(BizType::Alipay)
        }
        "62" if len == 19 => Some(BizType::UnionPay),
        _ => None,
    }
}

/// A payment code fit for a screen, a receipt or a log: the first and last four
/// characters with eight `*` between them (`1345********6789`), whatever the length.
/// A code shorter than 12 characters is shown as `********` only.
///
/// A payment code is a bearer credential for the customer's money until it expires:
/// never show, log or store it whole.
pub fn mask_code(code: &str) -> String {
    let code = code.trim();
    let chars: Vec<char> = code.chars().collect();
    if chars.len() < 12 {
        return "********".to_owned();
    }
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}********{tail}")
}

/// A new order id chosen by the POS: `P`, the local time as `yyyyMMddHHmmss`, and six
/// random digits, e.g. `P20240101120000042917` (21 characters).
///
/// Choose the order id before sending a payment: if its answer is lost, the same id is
/// what [`crate::PosClient::status_query`] asks about.
pub fn new_order_id() -> String {
    let now = chrono::Local::now();
    let random: u32 = rand::thread_rng().gen_range(0..1_000_000);
    format!("P{}{random:06}", now.format("%Y%m%d%H%M%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_codes() {
        for code in [
            "100000000000000000",
            "134567890123456789",
            "159999999999999999",
        ] {
            assert_eq!(detect_wallet(code), Some(BizType::WechatPay), "{code}");
        }
        for code in [
            "160000000000000000",  // prefix 16
            "09999999999999999",   // prefix 09
            "13456789012345678",   // 17 digits
            "1345678901234567890", // 19 digits
        ] {
            assert_ne!(detect_wallet(code), Some(BizType::WechatPay), "{code}");
        }
    }

    #[test]
    fn alipay_codes() {
        for code in [
            "2500000000000000",         // 16 digits
            "280000000000000000",       // 18 digits
            "300000000000000000000000", // 24 digits
            "29999999999999999",        // 17 digits
        ] {
            assert_eq!(detect_wallet(code), Some(BizType::Alipay), "{code}");
        }
        for code in [
            "250000000000000",           // 15 digits
            "3000000000000000000000000", // 25 digits
            "240000000000000000",        // prefix 24
            "310000000000000000",        // prefix 31
        ] {
            assert_eq!(detect_wallet(code), None, "{code}");
        }
    }

    #[test]
    fn unionpay_codes() {
        assert_eq!(
            detect_wallet("6212345678901234567"),
            Some(BizType::UnionPay)
        );
        assert_eq!(detect_wallet("621234567890123456"), None); // 18 digits
        assert_eq!(detect_wallet("62123456789012345678"), None); // 20 digits
        assert_eq!(detect_wallet("6312345678901234567"), None);
    }

    #[test]
    fn scanner_input_is_trimmed_and_junk_refused() {
        assert_eq!(
            detect_wallet("134567890123456789\r\n"),
            Some(BizType::WechatPay)
        );
        assert_eq!(
            detect_wallet("  6212345678901234567\t"),
            Some(BizType::UnionPay)
        );
        for code in [
            "",
            " ",
            "999",
            "1",
            "13456789012345678a",
            "13456789 0123456789",
            "+34567890123456789",
            "１34567890123456789", // full-width digit
            "https://qr.alipay.com/abc",
            "weixin://wxpay/bizpayurl?pr=x",
        ] {
            assert_eq!(detect_wallet(code), None, "{code:?}");
        }
    }

    #[test]
    fn codes_are_masked() {
        assert_eq!(mask_code("134567890123456789"), "1345********6789");
        assert_eq!(mask_code("6212345678901234567\n"), "6212********4567");
        assert_eq!(mask_code("999"), "********");
        assert_eq!(mask_code("12345678901"), "********");
        assert_eq!(mask_code("123456789012"), "1234********9012");
        assert_eq!(mask_code("ÄÖÜ456789xyz"), "ÄÖÜ4********9xyz");
    }

    #[test]
    fn order_ids_have_the_documented_shape() {
        let id = new_order_id();
        assert_eq!(id.len(), 21, "{id}");
        assert!(id.starts_with('P'));
        assert!(id[1..].bytes().all(|b| b.is_ascii_digit()), "{id}");
        assert!(id[1..].starts_with("20"), "{id}");
    }
}
