//! Finds the members of a JSON object without re-serialising anything, so the exact bytes
//! Alipay signed can be cut out of a reply (`wallets.md` §2.2: the signature covers the raw
//! text of the `*_response` member, whatever the key order or spacing).

use std::ops::Range;

/// One member of the reply's top-level object: its name and where its raw value sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AlipayRawMember {
    pub(super) name: String,
    pub(super) value: Range<usize>,
}

/// The members of the top-level JSON object, in order, with the byte ranges of their raw
/// values (from the first byte of the value to its last, whitespace around it excluded).
///
/// This scans instead of re-serialising because the signature covers the value's exact
/// bytes: key order, spacing and escapes must stay as Alipay sent them. `None` if `text` is
/// not one JSON object; callers validate the JSON first, so the scanner can stay simple.
pub(super) fn top_level_members(text: &str) -> Option<Vec<AlipayRawMember>> {
    let mut cursor = AlipayJsonCursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut members = Vec::new();
    cursor.skip_ws();
    cursor.eat(b'{')?;
    cursor.skip_ws();
    if cursor.peek()? == b'}' {
        cursor.pos += 1;
    } else {
        loop {
            cursor.skip_ws();
            let key_start = cursor.pos;
            cursor.skip_string()?;
            let name: String = serde_json::from_str(text.get(key_start..cursor.pos)?).ok()?;
            cursor.skip_ws();
            cursor.eat(b':')?;
            cursor.skip_ws();
            let value_start = cursor.pos;
            cursor.skip_value()?;
            members.push(AlipayRawMember {
                name,
                value: value_start..cursor.pos,
            });
            cursor.skip_ws();
            match cursor.peek()? {
                b',' => cursor.pos += 1,
                b'}' => {
                    cursor.pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    cursor.skip_ws();
    (cursor.pos == cursor.bytes.len()).then_some(members)
}

/// A byte cursor over JSON text that skips values without building them.
struct AlipayJsonCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl AlipayJsonCursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                // An escape covers the next byte, which may be a quote; `\uXXXX` needs no more
                // care because its hex digits are never quotes or backslashes.
                b'\\' => self.pos += 2,
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_container(),
            _ => {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    fn skip_container(&mut self) -> Option<()> {
        let mut depth: usize = 0;
        loop {
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' | b'[' => {
                    depth += 1;
                    self.pos += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.pos += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
                _ => self.pos += 1,
            }
        }
    }
}
