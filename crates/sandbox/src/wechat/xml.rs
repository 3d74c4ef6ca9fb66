//! The v2 XML envelope: `<xml>` with one child element per field. Parsing is strict about
//! structure (no DOCTYPE, so no entity tricks; no nested elements; no duplicate fields) and
//! tolerant about content (CDATA or escaped text, unknown fields kept for the signature).
//! Rendering wraps strings in CDATA and writes amounts and counts bare, as WeChat does.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Why a body is not a v2 XML message (the text goes into `return_msg`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WechatXmlError(String);

fn err(message: impl Into<String>) -> WechatXmlError {
    WechatXmlError(message.into())
}

/// Where the parser is in the document.
enum Place {
    BeforeRoot,
    InRoot,
    /// Inside a field: its name, the text parts and the CDATA parts read so far.
    InField {
        name: String,
        text: String,
        cdata: String,
        had_cdata: bool,
    },
    AfterRoot,
}

fn whitespace(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Parses a v2 message into its fields.
pub fn parse(body: &str) -> Result<BTreeMap<String, String>, WechatXmlError> {
    let mut reader = Reader::from_str(body);
    let mut fields = BTreeMap::new();
    let mut place = Place::BeforeRoot;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| err(format!("XML格式错误: {e}")))?;
        match event {
            // External entities and entity expansion start in the DTD: refuse it outright.
            Event::DocType(_) => return Err(err("XML格式错误: DOCTYPE is not allowed")),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => {
                return match place {
                    Place::AfterRoot => Ok(fields),
                    _ => Err(err("XML格式错误: unexpected end of document")),
                }
            }
            Event::Start(e) => {
                let name = std::str::from_utf8(e.name().as_ref())
                    .map_err(|_| err("XML格式错误: element name is not UTF-8"))?
                    .to_owned();
                place = match place {
                    Place::BeforeRoot if name == "xml" => Place::InRoot,
                    Place::BeforeRoot => {
                        return Err(err("XML格式错误: the root element must be <xml>"))
                    }
                    Place::InRoot => {
                        if fields.contains_key(&name) {
                            return Err(err(format!("XML格式错误: duplicate field {name}")));
                        }
                        Place::InField {
                            name,
                            text: String::new(),
                            cdata: String::new(),
                            had_cdata: false,
                        }
                    }
                    Place::InField { .. } => {
                        return Err(err(format!("XML格式错误: nested element <{name}>")))
                    }
                    Place::AfterRoot => {
                        return Err(err("XML格式错误: content after the root element"))
                    }
                };
            }
            Event::Empty(e) => {
                let name = std::str::from_utf8(e.name().as_ref())
                    .map_err(|_| err("XML格式错误: element name is not UTF-8"))?
                    .to_owned();
                match place {
                    Place::InRoot => {
                        if fields.insert(name.clone(), String::new()).is_some() {
                            return Err(err(format!("XML格式错误: duplicate field {name}")));
                        }
                    }
                    // `<xml/>`: a message without fields.
                    Place::BeforeRoot if name == "xml" => place = Place::AfterRoot,
                    _ => return Err(err(format!("XML格式错误: unexpected element <{name}/>"))),
                }
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start.
                place = match place {
                    Place::InField {
                        name,
                        text,
                        cdata,
                        had_cdata,
                    } => {
                        // Pretty-printed CDATA (`<a>\n  <![CDATA[x]]>\n</a>`) means `x`.
                        let value = if had_cdata && whitespace(text.as_bytes()) {
                            cdata
                        } else {
                            text + &cdata
                        };
                        fields.insert(name, value);
                        Place::InRoot
                    }
                    Place::InRoot => Place::AfterRoot,
                    _ => return Err(err("XML格式错误: unexpected end tag")),
                };
            }
            Event::Text(e) => match &mut place {
                Place::InField { text, .. } => {
                    // Only the five predefined entities and character references exist
                    // without a DTD; anything else is an error, never an expansion.
                    let unescaped = e.unescape().map_err(|e| err(format!("XML格式错误: {e}")))?;
                    text.push_str(&unescaped);
                }
                _ if whitespace(&e) => {}
                _ => return Err(err("XML格式错误: text outside the fields")),
            },
            Event::CData(e) => match &mut place {
                Place::InField {
                    cdata, had_cdata, ..
                } => {
                    let raw = e.into_inner();
                    let s = std::str::from_utf8(&raw).map_err(|_| err("NOT_UTF8"))?;
                    cdata.push_str(s);
                    *had_cdata = true;
                }
                _ => return Err(err("XML格式错误: CDATA outside the fields")),
            },
        }
    }
}

/// Fields written without CDATA: integers in WeChat's own answers.
fn numeric(name: &str) -> bool {
    // Indexed list fields (`refund_fee_0`) share the rule of their base name.
    let base = match name.rsplit_once('_') {
        Some((base, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    };
    matches!(
        base,
        "total_fee"
            | "cash_fee"
            | "refund_fee"
            | "cash_refund_fee"
            | "settlement_total_fee"
            | "settlement_refund_fee"
            | "coupon_fee"
            | "refund_count"
            | "total_refund_count"
            | "rate"
    )
}

/// Renders fields in the given order, strings as CDATA.
pub fn render<K: AsRef<str>, V: AsRef<str>>(fields: &[(K, V)]) -> String {
    let mut out = String::from("<xml>");
    for (k, v) in fields {
        let (k, v) = (k.as_ref(), v.as_ref());
        out.push('<');
        out.push_str(k);
        out.push('>');
        if numeric(k) && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(v);
        } else {
            // `]]>` cannot appear inside CDATA: close the section around it.
            out.push_str("<![CDATA[");
            out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        }
        out.push_str("</");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}
