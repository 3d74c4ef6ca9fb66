//! What the three wallets' bill parsers share: the bounds every download and parse keeps,
//! bounded line reading over a (decompressing) stream, strict text decoding (UTF-8, GBK),
//! exact decimals, Beijing times, zip entries, and the check of a file's summary against its
//! lines. Pure: no IO beyond the readers handed in, no clock (callers pass `now`).
//!
//! Bounds (a busy day's bill must parse in reasonable memory; a hostile or broken one must
//! not take the process down): at most [`MAX_DOWNLOAD_BYTES`] downloaded, at most
//! [`MAX_TEXT_BYTES`] of text after decompression, read as a stream line by line, at most
//! [`MAX_LINE_BYTES`] per line and [`MAX_LINES`] lines. A busy in-store merchant has a few
//! thousand rows a day, far below these.

use std::io::{BufRead, Read};
use std::time::Duration;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use qrgate_connector_api::{
    BillError, BillFile, BillLine, BillMismatch, BillTotals, ResponseLimit, Wallet, WalletBill,
};

/// The most bytes a bill download may have (compressed where the wallet compresses).
pub(crate) const MAX_DOWNLOAD_BYTES: usize = 64 * 1024 * 1024;
/// The most bytes of text one bill may unpack to.
pub(crate) const MAX_TEXT_BYTES: u64 = 256 * 1024 * 1024;
/// The longest line read; WeChat's widest rows are under 1 KiB.
pub(crate) const MAX_LINE_BYTES: u64 = 64 * 1024;
/// The most lines one bill may have.
pub(crate) const MAX_LINES: usize = 500_000;
/// The most entries a bill zip may hold (Alipay has two, UnionPay a handful).
pub(crate) const MAX_ZIP_ENTRIES: usize = 64;
/// Time for a whole bill download: bills are larger than answers, so more than the 15 s of
/// an ordinary call.
pub(crate) const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The bounds of a bill download.
pub(crate) fn download_limit() -> ResponseLimit {
    ResponseLimit {
        max_body_bytes: MAX_DOWNLOAD_BYTES,
        timeout: DOWNLOAD_TIMEOUT,
    }
}

const BEIJING_OFFSET_SECONDS: i32 = 8 * 3600;

// ---------------------------------------------------------------------------------------------
// Errors and assembly

/// Why a file could not be read; becomes a [`BillError`] with the file attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BillFormatError {
    Malformed(String),
    TooLarge { what: &'static str, limit: u64 },
}

impl BillFormatError {
    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        BillFormatError::Malformed(what.into())
    }

    /// The caller-facing error, with the downloaded file when there is one.
    pub(crate) fn into_bill_error(self, file: Option<BillFile>) -> BillError {
        match self {
            BillFormatError::Malformed(reason) => BillError::BadFile {
                reason,
                file: file.map(Box::new),
            },
            BillFormatError::TooLarge { what, limit } => BillError::TooLarge { what, limit },
        }
    }
}

/// What a parser found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedBill {
    pub(crate) lines: Vec<BillLine>,
    pub(crate) totals: BillTotals,
    /// Every summary figure that disagrees with the lines.
    pub(crate) mismatches: Vec<BillMismatch>,
}

/// The bill, or [`BillError::TotalsMismatch`] with the bill inside when the file's summary
/// disagrees with its lines.
pub(crate) fn assemble(
    wallet: Wallet,
    day: NaiveDate,
    parsed: ParsedBill,
    file: BillFile,
) -> Result<WalletBill, BillError> {
    let bill = WalletBill {
        wallet,
        day,
        lines: parsed.lines,
        totals: parsed.totals,
        file,
    };
    if parsed.mismatches.is_empty() {
        Ok(bill)
    } else {
        tracing::warn!(
            wallet = wallet.as_str(),
            bill.day = %day,
            mismatches = parsed.mismatches.len(),
            "bill summary does not match its lines"
        );
        Err(BillError::TotalsMismatch {
            mismatches: parsed.mismatches,
            bill: Box::new(bill),
        })
    }
}

/// Compares a summary figure with the sum of the lines (both in the same scaled unit) and
/// records a disagreement.
pub(crate) fn check_figure(
    mismatches: &mut Vec<BillMismatch>,
    figure: &str,
    stated_text: &str,
    stated: i128,
    summed: i128,
    scale: u32,
) {
    if stated != summed {
        mismatches.push(BillMismatch {
            figure: figure.to_owned(),
            stated: stated_text.to_owned(),
            summed: format_scaled(summed, scale),
        });
    }
}

/// `value / 10^scale` as a decimal string (`-2` at scale 2 → `-0.02`).
pub(crate) fn format_scaled(value: i128, scale: u32) -> String {
    if scale == 0 {
        return value.to_string();
    }
    let divisor = 10i128.pow(scale);
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let divisor = divisor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / divisor,
        magnitude % divisor,
        width = usize::try_from(scale).unwrap_or(0)
    )
}

// ---------------------------------------------------------------------------------------------
// Lines

/// Reads a text stream line by line within the bounds above. Line ends (`\n`, `\r\n`) are
/// removed; the bytes are not decoded.
pub(crate) struct BillLineReader<R> {
    inner: R,
    lines: usize,
    bytes: u64,
}

impl<R: BufRead> BillLineReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        BillLineReader {
            inner,
            lines: 0,
            bytes: 0,
        }
    }

    /// The next line, `None` at the end. A decompression or read failure is `Malformed`.
    pub(crate) fn next_line(&mut self) -> Result<Option<Vec<u8>>, BillFormatError> {
        let mut line = Vec::new();
        let read = (&mut self.inner)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| BillFormatError::malformed(format!("cannot read the file: {e}")))?;
        if read == 0 {
            return Ok(None);
        }
        if u64::try_from(line.len()).unwrap_or(u64::MAX) > MAX_LINE_BYTES {
            return Err(BillFormatError::TooLarge {
                what: "bytes in one line",
                limit: MAX_LINE_BYTES,
            });
        }
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
        if self.bytes > MAX_TEXT_BYTES {
            return Err(BillFormatError::TooLarge {
                what: "bytes of text",
                limit: MAX_TEXT_BYTES,
            });
        }
        self.lines += 1;
        if self.lines > MAX_LINES {
            return Err(BillFormatError::TooLarge {
                what: "lines",
                limit: u64::try_from(MAX_LINES).unwrap_or(u64::MAX),
            });
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }

    /// Lines read so far (1-based number of the last one), for error messages.
    pub(crate) fn line_number(&self) -> usize {
        self.lines
    }
}

/// UTF-8 text of a line, without a leading byte order mark.
pub(crate) fn utf8_text(line: &[u8]) -> Result<&str, BillFormatError> {
    let text =
        std::str::from_utf8(line).map_err(|_| BillFormatError::malformed("a line is not UTF-8"))?;
    Ok(text.strip_prefix('\u{FEFF}').unwrap_or(text))
}

/// GBK text (decoded as GB18030, its superset, which is what encoding_rs does for GBK).
/// Bytes that are not GBK are an error, never replaced.
pub(crate) fn gbk_text(bytes: &[u8]) -> Result<String, BillFormatError> {
    encoding_rs::GBK
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| BillFormatError::malformed("text is not GBK"))
}

// ---------------------------------------------------------------------------------------------
// Numbers and times

/// Parses a decimal as an integer of `10^-scale` units, exactly: an optional sign, digits, and
/// at most `scale` decimals (`-0.04000` at scale 5 → −4000). Thousands separators, exponents
/// and more decimals than `scale` are refused; `None` for anything unreadable.
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Option<i128> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, text.get(1..)?),
        b'+' => (false, text.get(1..)?),
        _ => (false, text),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let scale_len = usize::try_from(scale).ok()?;
    if int.is_empty() || int.len() > 18 || !digits(int) || !digits(frac) || frac.len() > scale_len {
        return None;
    }
    if unsigned.ends_with('.') {
        return None;
    }
    let int: i128 = int.parse().ok()?;
    let frac: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<scale_len$}").parse().ok()?
    };
    let value = int.checked_mul(10i128.pow(scale))?.checked_add(frac)?;
    Some(if negative { -value } else { value })
}

/// Narrows an exact value to `i64` (amounts of a bill always fit).
pub(crate) fn to_i64(value: i128) -> Option<i64> {
    i64::try_from(value).ok()
}

fn beijing() -> Option<FixedOffset> {
    FixedOffset::east_opt(BEIJING_OFFSET_SECONDS)
}

/// A Beijing-time `yyyy-MM-dd HH:mm:ss` (also with `/` between the date's parts, and the
/// full-width colons met in old WeChat bills) as UTC.
pub(crate) fn parse_beijing_datetime(text: &str) -> Option<DateTime<Utc>> {
    let normalised: String = text
        .trim()
        .chars()
        .map(|c| match c {
            '：' => ':',
            '/' => '-',
            other => other,
        })
        .collect();
    let naive = NaiveDateTime::parse_from_str(&normalised, "%Y-%m-%d %H:%M:%S").ok()?;
    beijing_to_utc(naive)
}

pub(crate) fn beijing_to_utc(naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    naive
        .and_local_timezone(beijing()?)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether Beijing's calendar `day` has not ended at `now`: its bill cannot exist yet.
pub(crate) fn beijing_day_not_over(day: NaiveDate, now: DateTime<Utc>) -> bool {
    let Some(offset) = beijing() else {
        return false;
    };
    now.with_timezone(&offset).date_naive() <= day
}

/// The instant `hour`:00 Beijing time on the day after `day`.
pub(crate) fn beijing_next_day_at(day: NaiveDate, hour: u32) -> Option<DateTime<Utc>> {
    let next = day.checked_add_days(Days::new(1))?;
    beijing_to_utc(next.and_hms_opt(hour, 0, 0)?)
}

/// The refusal for a day that has not ended: no wallet has its bill yet.
pub(crate) fn too_recent(day: NaiveDate) -> BillError {
    BillError::NotReady {
        code: "LOCAL_TOO_RECENT".into(),
        message: format!("{day} has not ended yet in the wallet's calendar; its bill cannot exist"),
    }
}

// ---------------------------------------------------------------------------------------------
// Zip and compression

/// One entry of a bill zip: its decoded name and its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ZipEntryName {
    pub(crate) index: usize,
    pub(crate) name: String,
}

/// A zip read from memory.
pub(crate) type BillZip<'a> = zip::ZipArchive<std::io::Cursor<&'a [u8]>>;

/// Opens a zip held in memory and lists its file entries. Names are UTF-8 when they are
/// valid UTF-8, else GBK (Alipay's and UnionPay's zips carry GBK names without the UTF-8
/// flag); a name that is neither is an error.
pub(crate) fn zip_entries(
    bytes: &[u8],
) -> Result<(BillZip<'_>, Vec<ZipEntryName>), BillFormatError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| BillFormatError::malformed(format!("not a zip: {e}")))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(BillFormatError::TooLarge {
            what: "zip entries",
            limit: u64::try_from(MAX_ZIP_ENTRIES).unwrap_or(u64::MAX),
        });
    }
    let mut names = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| BillFormatError::malformed(format!("zip entry {index}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let raw = entry.name_raw();
        let name = match std::str::from_utf8(raw) {
            Ok(name) => name.to_owned(),
            Err(_) => gbk_text(raw)?,
        };
        names.push(ZipEntryName { index, name });
    }
    Ok((archive, names))
}

/// The last path segment of a zip entry name.
pub(crate) fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

/// Inflates a zlib stream (with its header, as UnionPay's `fileContent` is; a raw deflate
/// stream is accepted too), refusing output over [`MAX_DOWNLOAD_BYTES`]: the result is a zip
/// that must be held in memory to be read.
pub(crate) fn inflate_bounded(compressed: &[u8]) -> Result<Vec<u8>, BillFormatError> {
    let limit = u64::try_from(MAX_DOWNLOAD_BYTES).unwrap_or(u64::MAX);
    let read_all = |reader: &mut dyn Read| -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.take(limit + 1).read_to_end(&mut out)?;
        Ok(out)
    };
    let inflated = read_all(&mut flate2::read::ZlibDecoder::new(compressed))
        .or_else(|_| read_all(&mut flate2::read::DeflateDecoder::new(compressed)))
        .map_err(|e| BillFormatError::malformed(format!("fileContent does not inflate: {e}")))?;
    if u64::try_from(inflated.len()).unwrap_or(u64::MAX) > limit {
        return Err(BillFormatError::TooLarge {
            what: "inflated bytes",
            limit,
        });
    }
    Ok(inflated)
}

/// Whether bytes start like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Splits one CSV line into cells: commas separate, a cell in double quotes may hold commas
/// and doubled quotes (`""`). Cells are not trimmed. An unclosed quote is an error.
pub(crate) fn split_csv(line: &str) -> Result<Vec<String>, BillFormatError> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_cell_start = true;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_cell_start || cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                cells.push(std::mem::take(&mut cell));
                at_cell_start = true;
                continue;
            }
            (_, c) => cell.push(c),
        }
        at_cell_start = false;
    }
    if quoted {
        return Err(BillFormatError::malformed(
            "an unclosed quote in a CSV line",
        ));
    }
    cells.push(cell);
    Ok(cells)
}

/// Helpers for the wallets' bill tests: zips with GBK names as Alipay and UnionPay write them,
/// and a loopback HTTP server.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::{BufRead, BufReader, Read, Write};

    /// A zip of `(raw name, content)` entries, deflated, without the UTF-8 name flag (so GBK
    /// names stay GBK bytes), written by hand from the zip format (APPNOTE 4.3): the zip
    /// crate's writer would mark names as UTF-8.
    pub(crate) fn zip_with_raw_names(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        fn u16le(out: &mut Vec<u8>, v: usize) {
            out.extend_from_slice(&u16::try_from(v).unwrap().to_le_bytes());
        }
        fn u32le(out: &mut Vec<u8>, v: usize) {
            out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
        }
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, content) in entries {
            let mut crc = flate2::Crc::new();
            crc.update(content);
            let mut encoder =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(content).unwrap();
            let compressed = encoder.finish().unwrap();
            let offset = out.len();
            let crc = usize::try_from(crc.sum()).unwrap();
            out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04]);
            for v in [20, 0, 8, 0, 0x21] {
                u16le(&mut out, v); // version, flags, deflate, time, date
            }
            u32le(&mut out, crc);
            u32le(&mut out, compressed.len());
            u32le(&mut out, content.len());
            u16le(&mut out, name.len());
            u16le(&mut out, 0);
            out.extend_from_slice(name);
            out.extend_from_slice(&compressed);

            central.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02]);
            for v in [20, 20, 0, 8, 0, 0x21] {
                u16le(&mut central, v);
            }
            u32le(&mut central, crc);
            u32le(&mut central, compressed.len());
            u32le(&mut central, content.len());
            u16le(&mut central, name.len());
            for v in [0, 0, 0, 0] {
                u16le(&mut central, v); // extra, comment, disk, internal attributes
            }
            u32le(&mut central, 0);
            u32le(&mut central, offset);
            central.extend_from_slice(name);
        }
        let central_offset = out.len();
        out.extend_from_slice(&central);
        out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06]);
        for v in [0, 0, entries.len(), entries.len()] {
            u16le(&mut out, v);
        }
        u32le(&mut out, central.len());
        u32le(&mut out, central_offset);
        u16le(&mut out, 0);
        out
    }

    /// GBK bytes of a text.
    pub(crate) fn gbk(text: &str) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable, "{text:?} is not GBK");
        bytes.into_owned()
    }

    /// A loopback listener and its base URL, so answers can name the server itself.
    pub(crate) fn listen() -> (std::net::TcpListener, String) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        (listener, base_url)
    }

    /// Serves `answers` (content type, body) in order, one connection each; hands back each
    /// request's line and body.
    pub(crate) fn serve(
        listener: std::net::TcpListener,
        answers: Vec<(&'static str, Vec<u8>)>,
    ) -> std::thread::JoinHandle<Vec<(String, Vec<u8>)>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (content_type, answer) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut content_length = 0usize;
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            content_length = value.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0; content_length];
                reader.read_exact(&mut body).unwrap();
                seen.push((request_line.trim().to_owned(), body));
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    answer.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                stream.write_all(&answer).unwrap();
            }
            seen
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_or_not_at_all() {
        assert_eq!(parse_scaled("0.04000", 5), Some(4000));
        assert_eq!(parse_scaled("-0.02000", 5), Some(-2000));
        assert_eq!(parse_scaled("5.76", 2), Some(576));
        assert_eq!(parse_scaled("0.0", 2), Some(0));
        assert_eq!(parse_scaled("0", 2), Some(0));
        assert_eq!(parse_scaled("+1.5", 2), Some(150));
        assert_eq!(parse_scaled("12", 0), Some(12));
        for bad in [
            "", "-", ".5", "1.", "1.234", "1,000.00", "1e3", "a0.00", " 1", "--1",
        ] {
            assert_eq!(parse_scaled(bad, 2), None, "{bad:?}");
        }
        assert_eq!(format_scaled(-4, 2), "-0.04");
        assert_eq!(format_scaled(123_456, 5), "1.23456");
        assert_eq!(format_scaled(7, 0), "7");
    }

    #[test]
    fn beijing_times_convert_to_utc_and_accept_old_spellings() {
        let utc = parse_beijing_datetime("2024-01-15 08:30:00").unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-01-15T00:30:00+00:00");
        assert_eq!(
            parse_beijing_datetime("2014-11-10 16：46：14")
                .unwrap()
                .to_rfc3339(),
            "2014-11-10T08:46:14+00:00"
        );
        assert_eq!(parse_beijing_datetime("2024/01/15 08:30:00"), Some(utc));
        assert_eq!(parse_beijing_datetime("2024-01-15"), None);
    }

    #[test]
    fn a_day_is_over_once_beijing_midnight_passed() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 15).unwrap();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(beijing_day_not_over(day, at("2024-01-15T15:59:59Z")));
        assert!(!beijing_day_not_over(day, at("2024-01-15T16:00:00Z")));
        assert_eq!(
            beijing_next_day_at(day, 12),
            Some(at("2024-01-16T04:00:00Z"))
        );
    }

    #[test]
    fn lines_are_bounded_and_lose_their_ends() {
        let text = b"a\r\nb\n\nc".to_vec();
        let mut reader = BillLineReader::new(text.as_slice());
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, ["a", "b", "", "c"]);
        let long = vec![b'x'; usize::try_from(MAX_LINE_BYTES).unwrap() + 10];
        let mut reader = BillLineReader::new(long.as_slice());
        assert!(matches!(
            reader.next_line(),
            Err(BillFormatError::TooLarge { .. })
        ));
    }

    #[test]
    fn csv_cells_keep_quoted_commas_and_refuse_open_quotes() {
        assert_eq!(
            split_csv("a,\"b,c\",\"d\"\"e\",,f\t").unwrap(),
            ["a", "b,c", "d\"e", "", "f\t"]
        );
        assert!(split_csv("a,\"b").is_err());
    }

    #[test]
    fn a_hand_made_zip_with_gbk_names_is_read_back() {
        let name = test_support::gbk("2088_20240115_业务明细.csv");
        let zip = test_support::zip_with_raw_names(&[(&name, b"hello")]);
        let (mut archive, names) = zip_entries(&zip).unwrap();
        assert_eq!(names[0].name, "2088_20240115_业务明细.csv");
        let mut text = String::new();
        archive
            .by_index(names[0].index)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
        assert!(zip_entries(b"PK not a zip").is_err());
    }

    #[test]
    fn inflation_takes_zlib_or_raw_deflate() {
        use std::io::Write;
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(b"zip bytes").unwrap();
        assert_eq!(
            inflate_bounded(&zlib.finish().unwrap()).unwrap(),
            b"zip bytes"
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(b"zip bytes").unwrap();
        assert_eq!(
            inflate_bounded(&raw.finish().unwrap()).unwrap(),
            b"zip bytes"
        );
        assert!(inflate_bounded(b"\x00\x01garbage").is_err());
    }

    #[test]
    fn gbk_is_decoded_strictly() {
        let (bytes, _, _) = encoding_rs::GBK.encode("业务明细");
        assert_eq!(gbk_text(&bytes).unwrap(), "业务明细");
        assert!(gbk_text(&[0x81]).is_err());
    }
}
