//! Every message the till shows for a refusal from the engine, walked in both languages: an
//! untranslated one (English on the Chinese till, or an engine's text passed through) fails.
//! The lists are matched exhaustively, so a new error variant does not compile until it is
//! listed here, and so rendered.

use chrono::Utc;
use qrgate_domain::{Currency, MerchantOrderId, Money, OrderStatus, Wallet};
use qrgate_engine::{ApprovalError, EngineError, PaymentError, RefundError};

use super::i18n::Lang;
use super::sale::{amount_problem, payment_refusal};
use super::today::{approval_text, refusal_text};

fn cad(minor: i64) -> Money {
    Money::new(minor, Currency::Cad)
}

fn id() -> MerchantOrderId {
    MerchantOrderId::parse("T1").unwrap()
}

fn payment_errors() -> Vec<PaymentError> {
    let all = vec![
        PaymentError::UnknownCodeFormat,
        PaymentError::WalletMismatch {
            code: Wallet::Alipay,
            asked: Wallet::WechatPay,
        },
        PaymentError::WalletNotEnabled(Wallet::UnionPay),
        PaymentError::OrderUsed,
        PaymentError::CodeAlreadyUsed(id()),
        PaymentError::AmountOutOfRange {
            max: cad(100_000_000),
        },
        PaymentError::TipOutOfRange {
            max: cad(100_000_000),
        },
        PaymentError::Invalid("invalid order_id".into()),
        PaymentError::Engine(EngineError::NotFound("merchant")),
    ];
    for e in &all {
        match e {
            PaymentError::UnknownCodeFormat
            | PaymentError::WalletMismatch { .. }
            | PaymentError::WalletNotEnabled(_)
            | PaymentError::OrderUsed
            | PaymentError::CodeAlreadyUsed(_)
            | PaymentError::AmountOutOfRange { .. }
            | PaymentError::TipOutOfRange { .. }
            | PaymentError::Invalid(_)
            | PaymentError::Engine(_) => {}
        }
    }
    all
}

fn refund_errors() -> Vec<RefundError> {
    let all = vec![
        RefundError::OrderNotFound(id()),
        RefundError::NotPaid {
            order_id: id(),
            status: OrderStatus::Closed,
        },
        RefundError::Exceeds {
            asked: cad(800),
            refundable: cad(700),
        },
        RefundError::OrderUsed(id()),
        RefundError::NotEnabled(Wallet::Alipay),
        RefundError::WrongCurrency(Currency::Cad),
        RefundError::AmountOutOfRange {
            max: cad(100_000_000),
        },
        RefundError::Invalid("refund_order_id is bad".into()),
        RefundError::Engine(EngineError::NotFound("order")),
    ];
    for e in &all {
        match e {
            RefundError::OrderNotFound(_)
            | RefundError::NotPaid { .. }
            | RefundError::Exceeds { .. }
            | RefundError::OrderUsed(_)
            | RefundError::NotEnabled(_)
            | RefundError::WrongCurrency(_)
            | RefundError::AmountOutOfRange { .. }
            | RefundError::Invalid(_)
            | RefundError::Engine(_) => {}
        }
    }
    all
}

fn approval_errors() -> Vec<ApprovalError> {
    let all = vec![
        ApprovalError::WrongCredentials,
        ApprovalError::Locked { until: Utc::now() },
        ApprovalError::NotSupervisor,
        ApprovalError::Busy,
        ApprovalError::Engine(EngineError::NotFound("operator")),
    ];
    for e in &all {
        match e {
            ApprovalError::WrongCredentials
            | ApprovalError::Locked { .. }
            | ApprovalError::NotSupervisor
            | ApprovalError::Busy
            | ApprovalError::Engine(_) => {}
        }
    }
    all
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Each message as the English till and the Chinese till show it, with the engine's own
/// text of the error (which must never be shown as it is).
fn every_message() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    // Each error is consumed by the rendering: one copy for each language.
    for (en, zh) in payment_errors().into_iter().zip(payment_errors()) {
        let engine = en.to_string();
        out.push((
            format!("payment: {engine}"),
            engine,
            payment_refusal(Lang::En, en).message,
            payment_refusal(Lang::Zh, zh).message,
        ));
    }
    for e in refund_errors() {
        out.push((
            format!("refund: {e}"),
            e.to_string(),
            refusal_text(Lang::En, &e),
            refusal_text(Lang::Zh, &e),
        ));
    }
    for e in approval_errors() {
        out.push((
            format!("approval: {e}"),
            e.to_string(),
            approval_text(Lang::En, &e),
            approval_text(Lang::Zh, &e),
        ));
    }
    for typed in ["1234567890", "12.345", "ten", "1,2,3"] {
        out.push((
            format!("amount {typed:?}"),
            String::new(),
            amount_problem(Lang::En, typed, Currency::Cad),
            amount_problem(Lang::Zh, typed, Currency::Cad),
        ));
    }
    out
}

#[test]
fn every_till_error_is_in_the_cashiers_language() {
    let all = every_message();
    assert!(all.len() >= 27, "{} messages", all.len());
    for (what, engine, en, zh) in &all {
        assert!(!en.trim().is_empty(), "{what}: no English text");
        assert!(
            !has_chinese(en),
            "{what}: Chinese on the English till: {en}"
        );
        assert!(
            has_chinese(zh),
            "{what}: untranslated on the Chinese till: {zh}"
        );
        assert_ne!(en, zh, "{what}");
        assert_ne!(en, engine, "{what}: the engine's text shown as it is");
        assert_ne!(zh, engine, "{what}: the engine's text shown as it is");
    }
}

#[test]
fn an_amount_over_the_limit_says_so_with_the_limit_in_the_merchants_currency() {
    let over = payment_refusal(
        Lang::En,
        PaymentError::AmountOutOfRange {
            max: cad(100_000_000),
        },
    );
    assert_eq!(
        over.message,
        "The amount is more than one sale can take: at most CA$1,000,000.00. Nothing was charged."
    );
    let zh = payment_refusal(
        Lang::Zh,
        PaymentError::AmountOutOfRange {
            max: cad(100_000_000),
        },
    );
    assert!(zh.message.contains("CA$1,000,000.00"), "{}", zh.message);
    // Ten digits are too many, not "not a number".
    assert_eq!(
        amount_problem(Lang::En, "1234567890", Currency::Cad),
        "The amount is more than one sale can take: at most CA$1,000,000.00."
    );
    assert_eq!(
        amount_problem(Lang::En, "12.345", Currency::Cad),
        "An amount has at most two decimals: type it like 12.50."
    );
    assert_eq!(
        amount_problem(Lang::En, "ten", Currency::Cad),
        "The amount is not a number: type it like 12.50."
    );
}
