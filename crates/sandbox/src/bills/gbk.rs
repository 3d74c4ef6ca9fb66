//! GBK, the encoding of Alipay's and UnionPay's bill files (`bills.md` §2.2, §3.2).

use encoding_rs::{EncoderResult, GBK};

/// `text` in GBK. A character GBK cannot write (an emoji in an item name, say) becomes `?`,
/// as the wallets' exports do, rather than an HTML character reference.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    let mut encoder = GBK.new_encoder();
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut rest = text;
    loop {
        let room = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len() * 4 + 16);
        let mut buffer = vec![0u8; room];
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut buffer, true);
        out.extend_from_slice(&buffer[..written]);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::Unmappable(_) => out.push(b'?'),
            // Not reachable: the buffer was sized for the whole input.
            EncoderResult::OutputFull => {}
        }
    }
}

/// The length of `text` in GBK bytes (what UnionPay's fixed widths count).
pub(crate) fn width(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            c if c.is_ascii() => 1,
            c => encode(c.encode_utf8(&mut [0u8; 4])).len(),
        })
        .sum()
}

/// `text` cut to at most `width` GBK bytes (never inside a character) and padded with
/// spaces to exactly `width`.
pub(crate) fn fit(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = self::width(c.encode_utf8(&mut [0u8; 4]));
        if used + w > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.extend(std::iter::repeat_n(' ', width - used));
    out
}
