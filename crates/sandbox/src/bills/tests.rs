//! Unit tests of the wallet-agnostic bill core, and fixtures the wallets' bill tests share: a
//! small fixed set of entries, and a way to move a sandbox's clock to a Beijing wall time.

use chrono::{NaiveDate, NaiveTime, TimeZone};

use super::*;
use crate::model::{Behaviour, Refund};
use crate::Sandbox;

/// `yyyy-MM-dd HH:mm:ss` Beijing as an instant.
pub(crate) fn bj(text: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
    Utc.from_utc_datetime(&(naive - Duration::hours(8)))
}

/// Moves the sandbox clock forward to the next `hh:mm:ss` Beijing (at least a minute ahead);
/// returns the Beijing date it lands on.
pub(crate) fn advance_to(sandbox: &Sandbox, time: NaiveTime) -> NaiveDate {
    let now = sandbox.now();
    let local = now.naive_utc() + Duration::hours(8);
    let mut target = local.date().and_time(time);
    while target <= local + Duration::minutes(1) {
        target += Duration::days(1);
    }
    // The clock keeps whole milliseconds: a little past the target, never just before it.
    sandbox
        .clock()
        .advance(target - local + Duration::milliseconds(2));
    target.date()
}

fn facts(no: &str, total: i64, paid: &str) -> EntryTrade {
    EntryTrade {
        out_trade_no: no.to_owned(),
        transaction_id: format!("TX{no}"),
        kind: TradeKind::Code,
        subject: "Maple Tea".to_owned(),
        customer_id: Some("c0001".to_owned()),
        created_at: bj(paid) - Duration::seconds(5),
        paid_at: Some(bj(paid)),
        pricing_currency: "CNY".to_owned(),
        pricing_total: total,
        cny_fen: total,
        rate_e8: 100_000_000,
    }
}

/// Two payments (12.34 and 5.00 at 0.60%) and a refund of 2.34 of the first, on 15 Jan 2024.
pub(crate) fn fixed_entries() -> Vec<BillEntry> {
    let p1 = facts("ORDER1", 1234, "2024-01-15 10:00:00");
    let p2 = facts("ORDER2", 500, "2024-01-15 11:30:00");
    vec![
        BillEntry {
            kind: EntryKind::Payment,
            at: bj("2024-01-15 10:00:00"),
            trade: p1.clone(),
            refund: None,
            currency: "CNY".to_owned(),
            amount: 1234,
            order_total: 1234,
            fee: 7,
            fee_rate_ppm: 6000,
            closed: false,
            invented: false,
        },
        BillEntry {
            kind: EntryKind::Payment,
            at: bj("2024-01-15 11:30:00"),
            trade: p2,
            refund: None,
            currency: "CNY".to_owned(),
            amount: 500,
            order_total: 500,
            fee: 3,
            fee_rate_ppm: 6000,
            closed: false,
            invented: false,
        },
        BillEntry {
            kind: EntryKind::Refund,
            at: bj("2024-01-15 12:00:00"),
            trade: p1,
            refund: Some(EntryRefund {
                out_refund_no: "ORDER1R1".to_owned(),
                refund_id: "50300001".to_owned(),
                succeeded: true,
                created_at: bj("2024-01-15 12:00:00"),
                succeeded_at: Some(bj("2024-01-15 12:00:03")),
            }),
            currency: "CNY".to_owned(),
            amount: 234,
            order_total: 1234,
            fee: 1,
            fee_rate_ppm: 6000,
            closed: false,
            invented: false,
        },
    ]
}

#[test]
fn bill_days_follow_beijing_time_and_unionpays_cut_off() {
    let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    for wallet in [Wallet::Wechat, Wallet::Alipay] {
        assert_eq!(
            bill_day(wallet, bj("2024-01-15 23:59:59")),
            day("2024-01-15")
        );
        assert_eq!(
            bill_day(wallet, bj("2024-01-16 00:00:00")),
            day("2024-01-16")
        );
        // 16:30 UTC is already the next day in Beijing.
        let utc = Utc.with_ymd_and_hms(2024, 1, 15, 16, 30, 0).unwrap();
        assert_eq!(bill_day(wallet, utc), day("2024-01-16"));
        assert_eq!(
            day_start(wallet, day("2024-01-16")),
            bj("2024-01-16 00:00:00")
        );
    }
    let u = Wallet::Unionpay;
    assert_eq!(bill_day(u, bj("2024-01-15 22:59:59")), day("2024-01-15"));
    assert_eq!(bill_day(u, bj("2024-01-15 23:00:00")), day("2024-01-16"));
    assert_eq!(bill_day(u, bj("2024-01-15 23:30:00")), day("2024-01-16"));
    assert_eq!(bill_day(u, bj("2024-12-31 23:30:00")), day("2025-01-01"));
    assert_eq!(day_start(u, day("2024-01-16")), bj("2024-01-15 23:00:00"));
    assert_eq!(ready_at(day("2024-01-15")), bj("2024-01-16 09:00:00"));
}

#[test]
fn fees_round_half_up_to_the_minor_unit() {
    assert_eq!(fee_of(1234, 6000), 7); // 7.404
    assert_eq!(fee_of(500, 6000), 3); // 3.0
    assert_eq!(fee_of(75, 6000), 0); // 0.45
    assert_eq!(fee_of(84, 6000), 1); // 0.504
    assert_eq!(fee_of(250, 2000), 1); // 0.5 exactly: up
    assert_eq!(fee_of(1234, 3800), 5); // 4.6892
    assert_eq!(share(7, 234, 1234), 1); // 1.327
    assert_eq!(share(7, 617, 1234), 4); // 3.5: up
    assert_eq!(parse_rate_percent("0.60"), Some(6000));
    assert_eq!(parse_rate_percent("0.6"), Some(6000));
    assert_eq!(parse_rate_percent("0.385%"), Some(3850));
    assert_eq!(parse_rate_percent("1"), Some(10_000));
    assert_eq!(parse_rate_percent("0.00001"), None);
    assert_eq!(parse_rate_percent("-1"), None);
    assert_eq!(parse_rate_percent("101"), None);
    assert_eq!(parse_rate_percent("1e2"), None);
    assert_eq!(format_rate_percent(6000), "0.60");
    assert_eq!(format_rate_percent(3850), "0.385");
    assert_eq!(format_rate_percent(10_000), "1.00");
    assert_eq!(format_major(-234), "-2.34");
    assert_eq!(format_major(5), "0.05");
}

fn state_with_trade(wallet: Wallet, total: i64, refunds: &[(i64, &str)]) -> State {
    let mut state = State::new(1);
    let paid = bj("2024-01-15 10:00:00");
    let trade = Trade {
        wallet,
        merchant: "M".to_owned(),
        out_trade_no: "T1".to_owned(),
        transaction_id: "X1".to_owned(),
        kind: TradeKind::Code,
        currency: "CNY".to_owned(),
        total,
        cny_fen: total,
        rate_e8: 100_000_000,
        subject: "s".to_owned(),
        status: TradeStatus::Success,
        customer_id: Some("c1".to_owned()),
        scanned: true,
        qr_token: None,
        behaviour: Some(Behaviour::Instant),
        confirm_at: None,
        revoke_at: None,
        notify_url: None,
        fingerprint: String::new(),
        created_at: paid,
        expires_at: None,
        paid_at: Some(paid),
        ended_at: None,
        refunds: refunds
            .iter()
            .enumerate()
            .map(|(n, (amount, at))| Refund {
                out_refund_no: format!("R{n}"),
                refund_id: format!("RID{n}"),
                amount: *amount,
                cny_fen: *amount,
                status: RefundStatus::Success,
                created_at: bj(at),
                succeeds_at: bj(at),
                succeeded_at: Some(bj(at)),
            })
            .collect(),
        fee_rate_ppm: Some(6000),
    };
    state
        .trades
        .insert(format!("{}/M/T1", wallet.as_str()), trade);
    state
}

#[test]
fn refunds_give_back_their_share_of_the_fee_and_the_last_the_rest() {
    let day = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    // Fee of 12.34 is 0.07; refunds of 2.34 (share 0.01), then 10.00 (the rest, 0.06).
    let state = state_with_trade(
        Wallet::Wechat,
        1234,
        &[(234, "2024-01-15 12:00:00"), (1000, "2024-01-17 08:00:00")],
    );
    let d15 = natural_entries(&state, Wallet::Wechat, day("2024-01-15"));
    assert_eq!(d15.len(), 2);
    assert_eq!(
        (d15[0].kind, d15[0].amount, d15[0].fee),
        (EntryKind::Payment, 1234, 7)
    );
    assert_eq!(
        (d15[1].kind, d15[1].amount, d15[1].fee),
        (EntryKind::Refund, 234, 1)
    );
    assert!(natural_entries(&state, Wallet::Wechat, day("2024-01-16")).is_empty());
    let d17 = natural_entries(&state, Wallet::Wechat, day("2024-01-17"));
    assert_eq!(
        (d17[0].kind, d17[0].amount, d17[0].fee),
        (EntryKind::Refund, 1000, 6)
    );

    // UnionPay keeps the fee of a refunded consume.
    let state = state_with_trade(Wallet::Unionpay, 1234, &[(1234, "2024-01-15 12:00:00")]);
    let d15 = natural_entries(&state, Wallet::Unionpay, day("2024-01-15"));
    assert_eq!(d15[1].fee, 0);
    assert_eq!(d15[0].fee, 7);
}

#[test]
fn a_recorded_rate_survives_a_rate_change() {
    let day = NaiveDate::from_ymd_opt(2024, 1, 15).unwrap();
    let mut state = state_with_trade(Wallet::Alipay, 10_000, &[]);
    state.fee_rates_ppm.insert(Wallet::Alipay, 3800);
    assert_eq!(natural_entries(&state, Wallet::Alipay, day)[0].fee, 60);
    // A trade saved before fees existed is billed at the current rate.
    for t in state.trades.values_mut() {
        t.fee_rate_ppm = None;
    }
    assert_eq!(natural_entries(&state, Wallet::Alipay, day)[0].fee, 38);
}

#[test]
fn breaks_change_only_the_bill_of_their_day() {
    let d15 = NaiveDate::from_ymd_opt(2024, 1, 15).unwrap();
    let d16 = d15.succ_opt().unwrap();
    let mut state = state_with_trade(Wallet::Wechat, 1234, &[(234, "2024-01-15 12:00:00")]);
    let plant = |state: &mut State, day, kind: BillBreak| {
        check_break(state, Wallet::Wechat, day, &kind).unwrap();
        state
            .bill_breaks
            .entry(breaks_key(Wallet::Wechat, day))
            .or_default()
            .push(PlantedBreak { id: 1, kind });
    };
    // Checks refuse targets that are not there.
    let missing = BillBreak::MissingTrade {
        out_trade_no: "NOPE".to_owned(),
    };
    assert!(matches!(
        check_break(&state, Wallet::Wechat, d15, &missing),
        Err(BreakError::NotFound(_))
    ));
    let wrong_day = BillBreak::MissingTrade {
        out_trade_no: "T1".to_owned(),
    };
    assert!(matches!(
        check_break(&state, Wallet::Wechat, d16, &wrong_day),
        Err(BreakError::NotInBill(_))
    ));
    let real_number = BillBreak::ExtraTrade {
        out_trade_no: "T1".to_owned(),
        amount: 1,
        currency: None,
    };
    assert!(matches!(
        check_break(&state, Wallet::Wechat, d15, &real_number),
        Err(BreakError::Conflict(_))
    ));

    plant(
        &mut state,
        d15,
        BillBreak::NextDay {
            out_trade_no: "T1".to_owned(),
        },
    );
    let e15 = bill_entries(&state, Wallet::Wechat, d15);
    assert_eq!(e15.len(), 1);
    assert_eq!(e15[0].kind, EntryKind::Refund);
    let e16 = bill_entries(&state, Wallet::Wechat, d16);
    assert_eq!(e16.len(), 1);
    assert_eq!(e16[0].kind, EntryKind::Payment);
    assert_eq!(e16[0].at, bj("2024-01-16 00:00:01"));
    // The sandbox's own record is untouched.
    assert_eq!(natural_entries(&state, Wallet::Wechat, d15).len(), 2);

    plant(
        &mut state,
        d15,
        BillBreak::ExtraRefund {
            out_trade_no: "T1".to_owned(),
            out_refund_no: "GHOSTR".to_owned(),
            amount: 617,
        },
    );
    let e15 = bill_entries(&state, Wallet::Wechat, d15);
    let ghost = e15
        .iter()
        .find(|e| {
            e.refund
                .as_ref()
                .is_some_and(|r| r.out_refund_no == "GHOSTR")
        })
        .unwrap();
    assert_eq!((ghost.amount, ghost.fee, ghost.invented), (617, 4, true));
    assert_eq!(ghost.at, bj("2024-01-15 12:00:00"));
}

#[test]
fn gbk_encodes_fits_and_replaces() {
    // 交易 and the full-width parentheses of （元）, in GBK.
    assert_eq!(gbk::encode("交易"), vec![0xBD, 0xBB, 0xD2, 0xD7]);
    assert_eq!(
        gbk::encode("（元）"),
        vec![0xA3, 0xA8, 0xD4, 0xAA, 0xA3, 0xA9]
    );
    assert_eq!(gbk::encode("a😀b"), b"a?b".to_vec());
    assert_eq!(gbk::width("交易A"), 5);
    assert_eq!(gbk::fit("交易A", 4), "交易");
    assert_eq!(gbk::fit("交易A", 3), "交 ");
    assert_eq!(gbk::fit("ab", 4), "ab  ");
}

#[test]
fn zip_archives_read_back_with_the_zip_crate() {
    use std::io::Read;
    let entries = [
        zip::ZipEntry {
            name: gbk::encode("2088_20240115_业务明细.csv"),
            content: gbk::encode("#支付宝业务明细查询\r\n".repeat(50).as_str()),
        },
        zip::ZipEntry {
            name: b"plain.txt".to_vec(),
            content: Vec::new(),
        },
    ];
    let bytes = zip::write(
        &entries,
        zip::dos_time(bj("2024-01-16 09:00:00").naive_utc()),
    )
    .unwrap();
    let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(archive.len(), 2);
    let mut first = archive.by_index(0).unwrap();
    // No UTF-8 flag: the raw name is GBK.
    assert_eq!(first.name_raw(), entries[0].name.as_slice());
    let (name, _, bad) = encoding_rs::GBK.decode(first.name_raw());
    assert!(!bad);
    assert_eq!(name, "2088_20240115_业务明细.csv");
    let mut content = Vec::new();
    first.read_to_end(&mut content).unwrap();
    assert_eq!(content, entries[0].content);
    drop(first);
    let mut second = archive.by_index(1).unwrap();
    let mut content = Vec::new();
    second.read_to_end(&mut content).unwrap();
    assert!(content.is_empty());
}

#[test]
fn planted_breaks_survive_the_state_file() {
    let mut state = State::new(1);
    let planted = PlantedBreak {
        id: 7,
        kind: BillBreak::ExtraTrade {
            out_trade_no: "GHOST".to_owned(),
            amount: 100,
            currency: Some("CAD".to_owned()),
        },
    };
    state
        .bill_breaks
        .insert("wechat/2024-01-15".to_owned(), vec![planted.clone()]);
    state.fee_rates_ppm.insert(Wallet::Alipay, 3800);
    let text = serde_json::to_string(&state).unwrap();
    assert!(
        text.contains(
            r#"{"id":7,"kind":"extra_trade","out_trade_no":"GHOST","amount":100,"currency":"CAD"}"#
        ),
        "{text}"
    );
    let back: State = serde_json::from_str(&text).unwrap();
    assert_eq!(back.bill_breaks["wechat/2024-01-15"], vec![planted]);
    assert_eq!(back.fee_rate_ppm(Wallet::Alipay), 3800);
    assert_eq!(back.fee_rate_ppm(Wallet::Wechat), DEFAULT_FEE_RATE_PPM);
    // A state saved before bills existed still loads.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    old.as_object_mut().unwrap().remove("bill_breaks");
    old.as_object_mut().unwrap().remove("fee_rates_ppm");
    let back: State = serde_json::from_value(old).unwrap();
    assert!(back.bill_breaks.is_empty());
}
