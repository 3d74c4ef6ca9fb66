//! A payment code drawn as the wallets' apps draw it: a Code 128 barcode over a QR code, both
//! as inline SVG. The crates `barcoders` and `qrcode` only encode; the drawing is here, so that
//! both scale with the page (a `viewBox`, crisp edges), keep their quiet zones, and carry a
//! text alternative.

use barcoders::sym::code128::Code128;
use qrcode::{Color, QrCode};

/// Quiet zone of a QR code, in modules (ISO/IEC 18004).
const QR_QUIET_MODULES: usize = 4;
/// Quiet zone each side of a barcode, in modules (at least 10 for Code 128).
const BARCODE_QUIET_MODULES: usize = 10;
/// Bar height in modules; about a quarter of the symbol's width for an 18-digit code.
const BARCODE_HEIGHT_MODULES: usize = 50;

/// The Code 128 modules (1 = bar) of a string of digits: code set C (two digits a symbol),
/// and a switch to B for the last digit of an odd count. `None` if `digits` is empty or not
/// all ASCII digits.
pub fn code128_modules(digits: &str) -> Option<Vec<u8>> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let even = digits.len() - digits.len() % 2;
    let (pairs, last) = digits.split_at(even);
    // barcoders spells the start and switch characters of code sets C and B as Ć and Ɓ.
    let data = if pairs.is_empty() {
        format!("Ɓ{last}")
    } else if last.is_empty() {
        format!("Ć{pairs}")
    } else {
        format!("Ć{pairs}Ɓ{last}")
    };
    Code128::new(data).ok().map(|c| c.encode())
}

/// A Code 128 barcode of `digits` as SVG, or `None` if they are not digits.
pub fn barcode_svg(digits: &str, label: &str) -> Option<String> {
    let modules = code128_modules(digits)?;
    let width = modules.len() + 2 * BARCODE_QUIET_MODULES;
    let mut path = String::new();
    let mut x = 0;
    while x < modules.len() {
        if modules[x] == 1 {
            let start = x;
            while x < modules.len() && modules[x] == 1 {
                x += 1;
            }
            path.push_str(&format!(
                "M{} 0h{}v{BARCODE_HEIGHT_MODULES}h-{}z",
                start + BARCODE_QUIET_MODULES,
                x - start,
                x - start
            ));
        } else {
            x += 1;
        }
    }
    Some(format!(
        "<svg class=\"barcode\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} \
         {BARCODE_HEIGHT_MODULES}\" preserveAspectRatio=\"none\" shape-rendering=\"crispEdges\" \
         role=\"img\" aria-label=\"{label}\"><rect width=\"{width}\" \
         height=\"{BARCODE_HEIGHT_MODULES}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>",
        label = escape_attribute(label),
    ))
}

/// A QR code of `text` as SVG, or `None` if it is too long for a QR code.
pub fn qr_svg(text: &str, label: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let size = code.width();
    let colors = code.to_colors();
    let full = size + 2 * QR_QUIET_MODULES;
    let mut path = String::new();
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let x = i % size + QR_QUIET_MODULES;
            let y = i / size + QR_QUIET_MODULES;
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" \
         shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"{label}\"><rect width=\"{full}\" \
         height=\"{full}\" fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>",
        label = escape_attribute(label),
    ))
}

fn escape_attribute(s: &str) -> String {
    maud::html!((s)).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(modules: &[u8]) -> String {
        modules.iter().map(|m| char::from(b'0' + m)).collect()
    }

    #[test]
    fn an_even_count_of_digits_is_drawn_in_code_set_c() {
        let modules = bits(&code128_modules("1234").unwrap());
        // Start C, "12", "34", the checksum (105 + 12·1 + 34·2) mod 103 = 82, and the stop
        // pattern with its final bar.
        assert_eq!(
            modules,
            [
                "11010011100",
                "10110011100",
                "10001011000",
                "10010011110",
                "1100011101011"
            ]
            .concat()
        );
    }

    #[test]
    fn payment_codes_of_each_wallet_become_barcodes() {
        for code in [
            "134567890123456789",
            "281234567890123456",
            "6212345678901234567",
        ] {
            let modules = code128_modules(code).unwrap();
            // Start, one symbol per pair, a switch and a digit for an odd count, checksum, stop.
            let symbols = 1 + code.len() / 2 + 2 * (code.len() % 2) + 1;
            assert_eq!(modules.len(), 11 * symbols + 13, "{code}");
            assert!(barcode_svg(code, "code").unwrap().contains("<path"));
        }
        assert_eq!(code128_modules(""), None);
        assert_eq!(code128_modules("12a4"), None);
    }

    #[test]
    fn a_qr_code_keeps_its_quiet_zone_and_escapes_its_label() {
        let svg = qr_svg("134567890123456789", "a \"quoted\" <label>").unwrap();
        // Version 1 is 21 modules wide, plus 4 on each side.
        assert!(svg.contains("viewBox=\"0 0 29 29\""), "{svg}");
        assert!(svg.contains("aria-label=\"a &quot;quoted&quot; &lt;label&gt;\""));
    }
}
