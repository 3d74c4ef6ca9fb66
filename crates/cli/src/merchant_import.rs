//! `qrgate merchant import`: merchants moved from another gateway keep the merchant id and the
//! sign key their POS already use. One merchant from flags, its key read from standard input
//! (never from the command line), or many from a CSV file, all of them or none.
//!
//! Everything is read and checked before the database is opened, so bad input changes
//! nothing; the engine then refuses ids already taken, and imports in one transaction.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use qrgate_domain::{Currency, MerchantId, MerchantTimeZone};
use qrgate_engine::{
    ImportError, ImportRefusal, ImportRefusalReason, ImportedMerchant, MerchantImport,
    SignKeyPlain, MAX_IMPORT_MERCHANTS,
};
use serde_json::json;

use crate::commands::{
    parse_currency, parse_merchant_id, parse_time_zone, print_json, read_secret_line,
    stdin_is_terminal,
};
use crate::config::Config;
use crate::wiring::open_engine;

/// The largest CSV file read.
const MAX_CSV_BYTES: u64 = 32 * 1024 * 1024;
/// The time zone of a merchant imported without one, as `merchant create`'s default.
const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The merchant's id at the previous gateway (two upper-case letters and 8 digits),
    /// kept as it is. Its sign key is read from standard input.
    #[arg(long, value_parser = parse_merchant_id, required_unless_present = "csv", conflicts_with = "csv")]
    merchant_id: Option<MerchantId>,
    /// The merchant's name as shown on receipts.
    #[arg(long, required_unless_present = "csv", conflicts_with = "csv")]
    name: Option<String>,
    /// The currency its POS prices in: CAD, USD or CNY.
    #[arg(long, value_parser = parse_currency, required_unless_present = "csv", conflicts_with = "csv")]
    currency: Option<Currency>,
    /// IANA time zone for its receipts and wire times (default Asia/Shanghai).
    #[arg(long, value_parser = parse_time_zone, conflicts_with = "csv")]
    time_zone: Option<MerchantTimeZone>,
    /// Import every merchant of this CSV file instead: UTF-8, a header row naming the columns
    /// merchant_id, name, currency, sign_key and optionally time_zone. All rows are imported,
    /// or none if any is refused.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Print JSON (merchant_id, operator_id, shop_id, name, currency, time_zone; never the
    /// key).
    #[arg(long)]
    json: bool,
}

/// The merchants to import, with the row of the file each came from (none from flags).
struct Input {
    list: Vec<MerchantImport>,
    rows: Option<Vec<usize>>,
}

pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let input = match &args.csv {
        Some(path) => read_csv_file(path)?,
        None => from_flags(&args)?,
    };
    let (engine, _) = open_engine(config).await?;
    let imported = match engine.import_merchants(&input.list).await {
        Ok(imported) => imported,
        Err(ImportError::Refused(refusals)) => {
            let lines: Vec<String> = refusals
                .iter()
                .map(|r| describe(r, input.rows.as_deref()))
                .collect();
            if input.rows.is_none() {
                bail!("{}; nothing was imported", lines.join("; "));
            }
            for line in &lines {
                eprintln!("{line}");
            }
            bail!(
                "{} of {} rows refused; nothing was imported",
                distinct_rows(&refusals),
                input.list.len()
            );
        }
        Err(ImportError::Engine(e)) => return Err(e.into()),
    };
    if args.json {
        let all: Vec<serde_json::Value> = imported.iter().map(imported_json).collect();
        return match (&args.csv, all.as_slice()) {
            (None, [one]) => print_json(one),
            _ => print_json(&serde_json::Value::Array(all)),
        };
    }
    if let (None, [m]) = (&args.csv, imported.as_slice()) {
        println!("merchant imported: {}", m.merchant.name);
        println!(
            "  merchant id   {}   (kept: its POS need no change)",
            m.merchant.id
        );
        println!("  sign key      the one given (sealed under the master key; not shown)");
        println!("  operator id   {}", m.operator.id);
        println!("  shop id       {}", m.shop.id);
        println!("  currency      {}", m.merchant.currency);
        println!("  time zone     {}", m.merchant.time_zone);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} merchants imported with their ids and sign keys (their POS need no change):",
        imported.len()
    );
    for m in &imported {
        println!(
            "  {}  operator {}  shop {}  {}  {:<20}  {}",
            m.merchant.id,
            m.operator.id,
            m.shop.id,
            m.merchant.currency,
            m.merchant.time_zone,
            m.merchant.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn imported_json(m: &ImportedMerchant) -> serde_json::Value {
    json!({
        "merchant_id": m.merchant.id.as_str(),
        "operator_id": m.operator.id.as_str(),
        "shop_id": m.shop.id.as_str(),
        "name": m.merchant.name,
        "currency": m.merchant.currency.code(),
        "time_zone": m.merchant.time_zone.name(),
    })
}

fn distinct_rows(refusals: &[ImportRefusal]) -> usize {
    let mut indexes: Vec<usize> = refusals.iter().map(|r| r.index).collect();
    indexes.dedup();
    indexes.len()
}

/// One refusal as a line for the provider, naming the file's rows when there is a file.
fn describe(r: &ImportRefusal, rows: Option<&[usize]>) -> String {
    let row = |index: usize| rows.and_then(|rows| rows.get(index)).copied();
    let at = match row(r.index) {
        Some(n) => format!("row {n}: "),
        None => String::new(),
    };
    let id = &r.id;
    let unique = "qrgate keeps merchant numbers unique across prefixes";
    let text = match &r.reason {
        ImportRefusalReason::TooMany => {
            format!("more than {MAX_IMPORT_MERCHANTS} merchants in one import: split the file")
        }
        ImportRefusalReason::Name(e) => format!("merchant {id}: {e}"),
        ImportRefusalReason::Exists => format!("merchant {id} already exists"),
        ImportRefusalReason::NumberTaken { by } => format!(
            "merchant {id}: its number {} is already used by merchant {by} ({unique})",
            &id.as_str()[2..]
        ),
        ImportRefusalReason::Repeated { first } => match row(*first) {
            Some(n) => format!("merchant {id} is also on row {n}"),
            None => format!("merchant {id} is given twice"),
        },
        ImportRefusalReason::NumberRepeated { first, other } => format!(
            "merchant {id} has the same number as {other}{} ({unique})",
            row(*first).map_or(String::new(), |n| format!(" on row {n}"))
        ),
    };
    format!("{at}{text}")
}

/// One merchant from the flags, its key from standard input.
fn from_flags(args: &ImportArgs) -> anyhow::Result<Input> {
    // clap requires these without --csv.
    let (Some(id), Some(name), Some(currency)) = (&args.merchant_id, &args.name, args.currency)
    else {
        bail!("--merchant-id, --name and --currency are required without --csv");
    };
    let text = read_sign_key(id)?;
    let sign_key = SignKeyPlain::parse(&text).map_err(|e| anyhow!("{e}; nothing was imported"))?;
    let time_zone = match args.time_zone {
        Some(tz) => tz,
        None => default_time_zone()?,
    };
    Ok(Input {
        list: vec![MerchantImport {
            id: id.clone(),
            name: name.clone(),
            currency,
            time_zone,
            sign_key,
        }],
        rows: None,
    })
}

fn default_time_zone() -> anyhow::Result<MerchantTimeZone> {
    parse_time_zone(DEFAULT_TIME_ZONE).map_err(|e| anyhow!(e))
}

/// The key as the POS has it: one line from standard input; at a terminal typed twice,
/// without echo.
fn read_sign_key(id: &MerchantId) -> anyhow::Result<String> {
    let key = read_secret_line(&format!("Sign key of {id} (not shown): "), "the sign key")?;
    if stdin_is_terminal() {
        let again = read_secret_line("The same key again: ", "the sign key")?;
        anyhow::ensure!(key == again, "the two keys differ; nothing was imported");
    }
    anyhow::ensure!(
        !key.is_empty(),
        "no sign key on standard input (give it as the merchant's POS has it, e.g. \
         `qrgate merchant import … < key.txt`); nothing was imported"
    );
    Ok(key)
}

fn read_csv_file(path: &Path) -> anyhow::Result<Input> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {shown}; nothing was imported"))?
        .len();
    anyhow::ensure!(
        size <= MAX_CSV_BYTES,
        "{shown} is larger than 32 MiB: split it; nothing was imported"
    );
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {shown}; nothing was imported"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow!("{shown} is not UTF-8 text (save it as \"CSV UTF-8\"); nothing was imported")
    })?;
    let CsvMerchants { list, rows, errors } =
        merchants_from_csv(&text).map_err(|e| anyhow!("{shown}: {e}; nothing was imported"))?;
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        bail!(
            "{} of {} rows refused; nothing was imported",
            errors.len(),
            errors.len() + list.len()
        );
    }
    anyhow::ensure!(
        !list.is_empty(),
        "{shown} has no merchant rows, only a header; nothing was imported"
    );
    Ok(Input {
        list,
        rows: Some(rows),
    })
}

const COLUMNS: [&str; 5] = ["merchant_id", "name", "currency", "sign_key", "time_zone"];

/// What a CSV file holds: the merchants of its good rows with the row each is on, and one
/// line per refused row.
struct CsvMerchants {
    list: Vec<MerchantImport>,
    rows: Vec<usize>,
    errors: Vec<String>,
}

/// The merchants of a CSV text. `Err` when the file as a whole is unusable (its quoting, its
/// header).
fn merchants_from_csv(text: &str) -> Result<CsvMerchants, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = parse_csv(text)?.into_iter();
    let (_, header) = records.next().ok_or(
        "the file is empty: expected a header row merchant_id,name,currency,sign_key \
         (and optionally time_zone), then one row per merchant",
    )?;
    let mut position = [None; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let name = name.trim().to_ascii_lowercase();
        let Some(c) = COLUMNS.iter().position(|c| *c == name) else {
            return Err(format!(
                "row 1: unknown column {name:?}: expected merchant_id, name, currency, sign_key \
                 and optionally time_zone"
            ));
        };
        if position[c].replace(i).is_some() {
            return Err(format!("row 1: column {name} appears twice"));
        }
    }
    let (Some(id_at), Some(name_at), Some(currency_at), Some(key_at)) =
        (position[0], position[1], position[2], position[3])
    else {
        let missing: Vec<&str> = COLUMNS[..4]
            .iter()
            .zip(position)
            .filter(|(_, p)| p.is_none())
            .map(|(c, _)| *c)
            .collect();
        return Err(format!(
            "row 1: the header has no column {}: expected merchant_id, name, currency, sign_key \
             and optionally time_zone",
            missing.join(", ")
        ));
    };
    let (mut list, mut rows, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (row, fields) in records {
        if fields.len() != header.len() {
            errors.push(format!(
                "row {row}: {} fields, but the header has {}",
                fields.len(),
                header.len()
            ));
            continue;
        }
        match merchant_from_fields(
            &fields[id_at],
            &fields[name_at],
            &fields[currency_at],
            &fields[key_at],
            position[4].map(|i| fields[i].as_str()),
        ) {
            Ok(m) => {
                list.push(m);
                rows.push(row);
            }
            Err(problems) => errors.push(format!("row {row}: {}", problems.join("; "))),
        }
    }
    Ok(CsvMerchants { list, rows, errors })
}

/// One row's fields as a merchant, or every problem with them (never quoting the key).
fn merchant_from_fields(
    id: &str,
    name: &str,
    currency: &str,
    sign_key: &str,
    time_zone: Option<&str>,
) -> Result<MerchantImport, Vec<String>> {
    let mut problems = Vec::new();
    let id = parse_merchant_id(id.trim())
        .map_err(|e| problems.push(e))
        .ok();
    let currency = parse_currency(currency.trim())
        .map_err(|e| problems.push(e))
        .ok();
    let time_zone = match time_zone.map(str::trim).filter(|tz| !tz.is_empty()) {
        Some(tz) => parse_time_zone(tz).map_err(|e| problems.push(e)).ok(),
        None => default_time_zone()
            .map_err(|e| problems.push(e.to_string()))
            .ok(),
    };
    let sign_key = SignKeyPlain::parse(sign_key)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    match (id, currency, time_zone, sign_key) {
        (Some(id), Some(currency), Some(time_zone), Some(sign_key)) if problems.is_empty() => {
            Ok(MerchantImport {
                id,
                name: name.to_owned(),
                currency,
                time_zone,
                sign_key,
            })
        }
        _ => Err(problems),
    }
}

/// Splits CSV text (RFC 4180) into records, each with the line it starts on: fields separated
/// by commas, optionally in double quotes (a quote inside written twice), records ended by
/// LF, CRLF or CR. Blank lines are skipped. `Err` names the line of a quoting mistake.
fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut any_quoted = false;
        loop {
            match chars.next() {
                None => {
                    fields.push(field);
                    break;
                }
                Some('"') if field.is_empty() && !quoted => {
                    quoted = true;
                    any_quoted = true;
                    loop {
                        match chars.next() {
                            None => {
                                return Err(format!("row {start}: a quoted field is not closed"))
                            }
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                        return Err(format!(
                            "row {start}: text after a closing quote (inside a quoted field, \
                             write a quote as \"\")"
                        ));
                    }
                }
                Some('"') => {
                    return Err(format!(
                        "row {start}: a quote inside an unquoted field (quote the whole field, \
                         and write the quote as \"\")"
                    ))
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    quoted = false;
                }
                Some(c @ ('\n' | '\r')) => {
                    if c == '\r' && chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                    fields.push(field);
                    break;
                }
                Some(c) => field.push(c),
            }
        }
        let blank = !any_quoted && fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            records.push((start, fields));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_may_be_quoted_with_commas_quotes_and_crlf() {
        let text =
            "a,b,c\r\n\"Maple, Tea\",\"say \"\"hi\"\"\",\r\n\n\"\",x,\"multi\nline\"\nlast,1,2";
        let records = parse_csv(text).unwrap();
        assert_eq!(
            records,
            vec![
                (1, vec!["a".into(), "b".into(), "c".into()]),
                (
                    2,
                    vec!["Maple, Tea".into(), "say \"hi\"".into(), String::new()]
                ),
                (4, vec![String::new(), "x".into(), "multi\nline".into()]),
                (6, vec!["last".into(), "1".into(), "2".into()]),
            ]
        );
    }

    #[test]
    fn csv_quoting_mistakes_name_their_row() {
        assert!(parse_csv("a,b\n\"open,x\n")
            .unwrap_err()
            .starts_with("row 2: a quoted field is not closed"));
        assert!(parse_csv("a,b\nx,\"q\"z\n")
            .unwrap_err()
            .starts_with("row 2: text after a closing quote"));
        assert!(parse_csv("a,b\n\nx,y\"z\n")
            .unwrap_err()
            .starts_with("row 3: a quote inside an unquoted field"));
    }

    #[test]
    fn rows_are_read_by_the_header_in_any_column_order() {
        let text = "\u{feff}Sign_Key, merchant_id ,name,currency,time_zone\n\
                    6698851A525C9433,ON00004652,\"Maple, Tea\",cad,\n\
                    6698851A525C9434,QC00005496,Érable,USD,America/Toronto\n";
        let CsvMerchants { list, rows, errors } = merchants_from_csv(text).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows, vec![2, 3]);
        assert_eq!(list[0].id.as_str(), "ON00004652");
        assert_eq!(list[0].name, "Maple, Tea");
        assert_eq!(list[0].currency, Currency::Cad);
        assert_eq!(list[0].time_zone.name(), "Asia/Shanghai");
        assert_eq!(list[0].sign_key.expose(), "6698851A525C9433");
        assert_eq!(list[1].time_zone.name(), "America/Toronto");
    }

    #[test]
    fn bad_rows_are_each_named_and_keys_never_quoted() {
        let text = "merchant_id,name,currency,sign_key\n\
                    ON0000465,A,CAD,6698851A525C9433\n\
                    ON00004652,B,EUR,6698851a525c9433\n\
                    ON00004653,C,CAD\n\
                    ON00004654,D,CAD,6698851A525C9433\n";
        let CsvMerchants { list, rows, errors } = merchants_from_csv(text).unwrap();
        assert_eq!(rows, vec![5]);
        assert_eq!(list.len(), 1);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("row 2: invalid merchant id"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("row 3: "), "{errors:?}");
        assert!(errors[1].contains("currency") && errors[1].contains("lower-case"));
        assert!(!errors[1].to_lowercase().contains("6698851a525c9433"));
        assert_eq!(errors[2], "row 4: 3 fields, but the header has 4");
    }

    #[test]
    fn a_bad_header_is_refused_as_a_whole() {
        for (text, needle) in [
            ("", "the file is empty"),
            (
                "merchant_id,name,currency\nON00000001,a,CAD\n",
                "no column sign_key",
            ),
            (
                "merchant_id,name,currency,sign_key,timezone\n",
                "unknown column \"timezone\"",
            ),
            (
                "merchant_id,name,name,currency,sign_key\n",
                "column name appears twice",
            ),
        ] {
            let e = merchants_from_csv(text).err().unwrap();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
