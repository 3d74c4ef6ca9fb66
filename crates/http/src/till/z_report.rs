//! The day's close (a Z report): payments and refunds of a day in the merchant's time zone,
//! by wallet and by operator, with the net; printable on 58 mm or 80 mm paper
//! (`/pos/z-report?day=2026-12-03&paper=58`; today without `day`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::NaiveDate;
use maud::{html, PreEscaped};
use qrgate_domain::Money;
use qrgate_engine::ZReport;
use serde::Deserialize;

use super::i18n::{self, Lang, Locale};
use super::layout::{notice, Page};
use super::order::unavailable;
use super::receipt::print_style;
use super::{session_of, signed_out};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct ZQuery {
    day: Option<String>,
    paper: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    Query(q): Query<ZQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let locale = Locale::from_parts(uri.query(), &headers);
    let lang = locale.lang;
    let (session, _) = match session_of(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return signed_out(&e),
    };
    let merchant = &session.merchant;
    let day = match q.day.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => state.engine.merchant_day(merchant, state.engine.now()),
        Some(text) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => day,
            Err(_) => {
                return Page::new(locale, lang.pick("Day's close", "日结"), Some(&session))
                    .status(StatusCode::BAD_REQUEST)
                    .render(
                        &uri,
                        notice(
                            "error",
                            "z-error",
                            lang.pick(
                                "That is not a day: choose one like 2026-12-03.",
                                "日期格式错误，请输入如 2026-12-03。",
                            ),
                            "",
                        ),
                    )
            }
        },
    };
    let report = match state.engine.z_report(merchant, day).await {
        Ok(r) => r,
        Err(e) => return unavailable(locale, &uri, &session, &e.to_string()),
    };
    let paper = match q.paper.as_deref() {
        Some("58") => 58,
        _ => 80,
    };
    let other = if paper == 58 { 80 } else { 58 };
    let money = |minor: i64| i18n::money(lang, Money::new(minor, report.currency));
    let (paid_n, paid) = report.paid_total();
    let (refund_n, refunded) = report.refund_total();
    let by_wallet = ZReport::group(&report.paid, |l| l.wallet);
    let by_operator = ZReport::group(&report.paid, |l| l.operator_id.clone());
    let refunds_by_wallet = ZReport::group(&report.refunds, |l| l.wallet);
    let day_text = day.format("%Y-%m-%d").to_string();
    let body = html! {
        style { (PreEscaped(print_style(paper))) }
        div.no-print.actions {
            button #print type="button" { (lang.pick("Print", "打印")) }
            a.button.secondary href={ "/pos/z-report?day=" (day_text) "&paper=" (other) } {
                (match lang { Lang::En => format!("{other} mm paper"), Lang::Zh => format!("{other} mm 纸") }) }
            form.z-day method="get" action="/pos/z-report" {
                label for="z-day" { (lang.pick("Day", "日期")) }
                input #z-day type="date" name="day" value=(day_text);
                input type="hidden" name="paper" value=(paper);
                button.secondary type="submit" { (lang.pick("Show", "查看")) }
            }
            a.button.secondary href="/pos/today" { (lang.pick("Back", "返回")) }
        }
        article.receipt #z-report data-paper=(paper) {
            h1.r-title { (merchant.name) }
            p.r-center { (lang.pick("Day's close (Z report)", "日结报表")) " · " (day_text) }
            hr;
            p.r-center { (lang.pick("Payments by wallet", "按钱包统计收款")) }
            table.r-lines #z-wallets {
                @for (wallet, n, total) in &by_wallet {
                    tr { th { (i18n::wallet_name(lang, *wallet)) " ×" (n) } td.num { (money(*total)) } }
                }
            }
            p.r-center { (lang.pick("Payments by operator", "按收银员统计收款")) }
            table.r-lines #z-operators {
                @for (operator, n, total) in &by_operator {
                    tr { th { (operator.clone().unwrap_or_else(|| lang.pick("(POS)", "（POS）").to_owned())) " ×" (n) } td.num { (money(*total)) } }
                }
            }
            @if !refunds_by_wallet.is_empty() {
                p.r-center { (lang.pick("Refunds by wallet", "按钱包统计退款")) }
                table.r-lines #z-refunds {
                    @for (wallet, n, total) in &refunds_by_wallet {
                        tr { th { (i18n::wallet_name(lang, *wallet)) " ×" (n) } td.num { "-" (money(*total)) } }
                    }
                }
            }
            hr;
            table.r-lines #z-totals {
                tr { th { (lang.pick("Payments", "收款")) " ×" (paid_n) } td.num #z-paid { (i18n::money(lang, paid)) } }
                tr { th { (lang.pick("Refunds", "退款")) " ×" (refund_n) } td.num #z-refunded { "-" (i18n::money(lang, refunded)) } }
                tr { th { (lang.pick("Net", "净额")) } td.num #z-net { (i18n::money(lang, report.net())) } }
            }
        }
    };
    let mut page = Page::new(locale, lang.pick("Day's close", "日结"), Some(&session));
    page.bare = true;
    page.render(&uri, body)
}
