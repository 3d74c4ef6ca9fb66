//! The merchant's console: dashboard figures, orders filtered and paged, an order's whole
//! story, refunds, exports, notifications, and settings (shops, terminals, operators and
//! their PINs, the sign key).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use qrgate_domain::{
    Merchant, MerchantId, Money, Operator, OperatorId, Order, OrderStatus, Permission, Refund,
    Shop, ShopId, Terminal, TerminalNo, Wallet,
};
use qrgate_store::{
    CallbackAttempt, CallbackRecord, LedgerEntry, OrderEvent, OrderFilter, PageCursor,
};

use super::{Actor, Change, ConsoleError, ConsoleRule};
use crate::{Engine, EngineError, RefundOrder, RefundView, RotatedKey};

/// The most rows one page of a list shows.
pub const MAX_PAGE: i64 = 200;
/// Rows read per round trip by an export.
pub const EXPORT_PAGE: i64 = 1000;
/// The longest reason kept with a console refund.
const MAX_REASON_CHARS: usize = 200;

/// A filter on the orders list as the person gave it; the shop is turned into its
/// terminals.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub statuses: Vec<OrderStatus>,
    pub wallet: Option<Wallet>,
    pub shop: Option<ShopId>,
    pub terminal_no: Option<TerminalNo>,
    pub operator_id: Option<OperatorId>,
    pub total_min: Option<Money>,
    pub total_max: Option<Money>,
    pub search: Option<String>,
}

/// One page of orders and where the next starts.
#[derive(Debug, Clone)]
pub struct OrdersPage {
    pub orders: Vec<Order>,
    pub next: Option<PageCursor>,
}

/// Everything that happened to an order.
#[derive(Debug, Clone)]
pub struct OrderDetail {
    pub order: Order,
    /// Every wallet call (and wallet notification), oldest first.
    pub timeline: Vec<OrderEvent>,
    pub refunds: Vec<Refund>,
    /// The notification to the merchant and its attempts, if the order has one.
    pub callback: Option<(qrgate_store::Callback, Vec<CallbackAttempt>)>,
    pub ledger: Vec<LedgerEntry>,
}

/// Sales of one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSummary {
    pub wallet: Wallet,
    pub sales_count: i64,
    pub sales: Money,
    pub refunds_count: i64,
    pub refunds: Money,
}

/// Sales, refunds and net over a span of time, in the merchant's currency.
#[derive(Debug, Clone)]
pub struct Summary {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub sales_count: i64,
    pub sales: Money,
    pub refunds_count: i64,
    pub refunds: Money,
    pub net: Money,
    pub by_wallet: Vec<WalletSummary>,
    /// `(shop name or "-", terminal number or "-", count, sales)`.
    pub by_terminal: Vec<(String, String, i64, Money)>,
}

/// One day of the chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySales {
    pub day: NaiveDate,
    pub sales: Money,
}

/// The dashboard: today, this month, and the last 30 days, in the merchant's time zone.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub merchant: Merchant,
    pub today: Summary,
    pub month: Summary,
    pub days: Vec<DaySales>,
}

/// The start of `day` in `merchant`'s time zone (a day starting in a DST gap starts at its
/// end).
pub(crate) fn start_of_day(
    merchant: &Merchant,
    day: NaiveDate,
) -> Result<DateTime<Utc>, EngineError> {
    let tz = merchant.time_zone.tz();
    let midnight = day
        .and_hms_opt(0, 0, 0)
        .ok_or(EngineError::NotFound("day"))?;
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .ok_or(EngineError::NotFound("day"))
}

fn order_json(o: &Order) -> serde_json::Value {
    serde_json::json!({
        "order_id": o.order_id.as_str(),
        "status": o.status.as_str(),
        "total": o.total().minor(),
        "refund_reserved": o.refund_reserved.minor(),
        "refunded": o.refunded.minor(),
        "currency": o.amount.currency().code(),
    })
}

impl Engine {
    /// The merchant, if the actor sees it.
    pub async fn console_merchant(
        &self,
        actor: &Actor,
        merchant: &MerchantId,
    ) -> Result<Merchant, ConsoleError> {
        actor.check(merchant, Permission::ViewSales)?;
        Ok(self.merchant(merchant).await?)
    }

    /// Sales, refunds and net of `[from, to)`.
    async fn summary(
        &self,
        merchant: &Merchant,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        shops: &[Shop],
        terminals: &[Terminal],
    ) -> Result<Summary, ConsoleError> {
        let currency = merchant.currency;
        let money = |m: i64| Money::new(m, currency);
        let sales = self.store.sales_groups(&merchant.id, from, to).await?;
        let refunds = self.store.refund_groups(&merchant.id, from, to).await?;
        let mut by_wallet = Vec::new();
        for wallet in Wallet::ALL {
            let (n, s) = sales
                .iter()
                .filter(|g| g.wallet == wallet)
                .fold((0, 0), |(n, s), g| (n + g.count, s + g.gross_minor));
            let (rn, r) = refunds
                .iter()
                .filter(|g| g.wallet == wallet)
                .fold((0, 0), |(n, s), g| (n + g.count, s + g.amount_minor));
            if n > 0 || rn > 0 {
                by_wallet.push(WalletSummary {
                    wallet,
                    sales_count: n,
                    sales: money(s),
                    refunds_count: rn,
                    refunds: money(r),
                });
            }
        }
        let mut by_terminal: Vec<(String, String, i64, Money)> = Vec::new();
        for g in &sales {
            let terminal = g.terminal_no.clone().unwrap_or_else(|| "-".into());
            let shop = terminals
                .iter()
                .find(|t| Some(t.terminal_no.as_str()) == g.terminal_no.as_deref())
                .and_then(|t| t.shop_id.as_ref())
                .and_then(|id| shops.iter().find(|s| &s.id == id))
                .map_or_else(|| "-".to_owned(), |s| s.name.clone());
            match by_terminal
                .iter_mut()
                .find(|(s, t, _, _)| *s == shop && *t == terminal)
            {
                Some(row) => {
                    row.2 += g.count;
                    row.3 = money(row.3.minor() + g.gross_minor);
                }
                None => by_terminal.push((shop, terminal, g.count, money(g.gross_minor))),
            }
        }
        by_terminal.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let sales_count = by_wallet.iter().map(|w| w.sales_count).sum();
        let sales_total: i64 = by_wallet.iter().map(|w| w.sales.minor()).sum();
        let refunds_count = by_wallet.iter().map(|w| w.refunds_count).sum();
        let refunds_total: i64 = by_wallet.iter().map(|w| w.refunds.minor()).sum();
        Ok(Summary {
            from,
            to,
            sales_count,
            sales: money(sales_total),
            refunds_count,
            refunds: money(refunds_total),
            net: money(sales_total - refunds_total),
            by_wallet,
            by_terminal,
        })
    }

    /// The merchant's dashboard as of now.
    pub async fn dashboard(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
    ) -> Result<Dashboard, ConsoleError> {
        let merchant = self.console_merchant(actor, merchant_id).await?;
        let shops = self.store.shops(merchant_id).await?;
        let terminals = self.store.terminals(merchant_id).await?;
        let now = self.now();
        let today = self.merchant_day(&merchant, now);
        let tomorrow = today.succ_opt().ok_or(EngineError::NotFound("day"))?;
        let first_of_month = today.with_day0(0).ok_or(EngineError::NotFound("day"))?;
        let day_start = start_of_day(&merchant, today)?;
        let day_end = start_of_day(&merchant, tomorrow)?;
        let today_summary = self
            .summary(&merchant, day_start, day_end, &shops, &terminals)
            .await?;
        let month = self
            .summary(
                &merchant,
                start_of_day(&merchant, first_of_month)?,
                day_end,
                &shops,
                &terminals,
            )
            .await?;
        let mut days = Vec::new();
        let mut day = today - Duration::days(29);
        while day <= today {
            let next = day.succ_opt().ok_or(EngineError::NotFound("day"))?;
            let total = self
                .store
                .sales_total(
                    merchant_id,
                    start_of_day(&merchant, day)?,
                    start_of_day(&merchant, next)?,
                )
                .await?;
            days.push(DaySales {
                day,
                sales: Money::new(total, merchant.currency),
            });
            day = next;
        }
        Ok(Dashboard {
            merchant,
            today: today_summary,
            month,
            days,
        })
    }

    /// Turns a query into the store's filter, refusing another merchant's shop, terminal or
    /// amounts in another currency. Nothing is read for a refused filter.
    async fn order_filter(
        &self,
        merchant: &Merchant,
        q: &OrderQuery,
    ) -> Result<OrderFilter, ConsoleError> {
        let mut filter = OrderFilter::new(merchant.id.clone());
        filter.from = q.from;
        filter.to = q.to;
        filter.statuses = q.statuses.clone();
        filter.wallet = q.wallet;
        filter.operator_id = q.operator_id.as_ref().map(|o| o.as_str().to_owned());
        for m in [q.total_min, q.total_max].into_iter().flatten() {
            if m.currency() != merchant.currency {
                return Err(ConsoleRule::AmountCurrency {
                    currency: merchant.currency.to_string(),
                }
                .into());
            }
        }
        filter.total_min = q.total_min.map(Money::minor);
        filter.total_max = q.total_max.map(Money::minor);
        filter.search = q
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if let Some(s) = &filter.search {
            if s.chars().count() > 64 {
                return Err(ConsoleRule::SearchTooLong { max: 64 }.into());
            }
        }
        let mut terminals: Option<Vec<String>> = None;
        if let Some(shop) = &q.shop {
            if shop.merchant_id() != merchant.id {
                return Err(ConsoleRule::NoSuchShop.into());
            }
            let of_shop: Vec<String> = self
                .store
                .terminals(&merchant.id)
                .await?
                .into_iter()
                .filter(|t| t.shop_id.as_ref() == Some(shop))
                .map(|t| t.terminal_no.as_str().to_owned())
                .collect();
            terminals = Some(of_shop);
        }
        if let Some(t) = &q.terminal_no {
            let t = t.as_str().to_owned();
            terminals = Some(match terminals {
                Some(list) => list.into_iter().filter(|x| *x == t).collect(),
                None => vec![t],
            });
        }
        filter.terminal_nos = terminals;
        Ok(filter)
    }

    /// A page of the merchant's orders, newest first.
    pub async fn console_orders(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        q: &OrderQuery,
        after: Option<&PageCursor>,
        limit: i64,
    ) -> Result<OrdersPage, ConsoleError> {
        let merchant = self.console_merchant(actor, merchant_id).await?;
        let filter = self.order_filter(&merchant, q).await?;
        let limit = limit.clamp(1, EXPORT_PAGE);
        let mut orders = self.store.search_orders(&filter, after, limit + 1).await?;
        let more = i64::try_from(orders.len()).unwrap_or(i64::MAX) > limit;
        orders.truncate(usize::try_from(limit).unwrap_or(0));
        let next = if more {
            orders.last().map(|o| PageCursor {
                created_at: o.created_at,
                key: o.key.clone(),
            })
        } else {
            None
        };
        Ok(OrdersPage { orders, next })
    }

    /// A page of the merchant's refunds created in `[from, to)`, newest first (for exports).
    pub async fn console_refunds(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&PageCursor>,
        limit: i64,
    ) -> Result<(Vec<Refund>, Option<PageCursor>), ConsoleError> {
        actor.check(merchant_id, Permission::ViewSales)?;
        let limit = limit.clamp(1, EXPORT_PAGE);
        let refunds = self
            .store
            .search_refunds(merchant_id, from, to, after, limit)
            .await?;
        let next = (i64::try_from(refunds.len()).unwrap_or(0) == limit)
            .then(|| refunds.last())
            .flatten()
            .map(|r| PageCursor {
                created_at: r.created_at,
                key: r.key.clone(),
            });
        Ok((refunds, next))
    }

    /// The merchant's order with the key `key`; `NotFound` for another merchant's.
    async fn order_of(&self, merchant_id: &MerchantId, key: &str) -> Result<Order, ConsoleError> {
        self.store
            .order(key)
            .await?
            .filter(|o| &o.merchant_id == merchant_id)
            .ok_or(ConsoleError::NotFound("order"))
    }

    /// An order with its timeline, refunds, notification and ledger postings.
    pub async fn console_order(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        key: &str,
    ) -> Result<OrderDetail, ConsoleError> {
        actor.check(merchant_id, Permission::ViewSales)?;
        let order = self.order_of(merchant_id, key).await?;
        let timeline = self.store.order_events(&order.key).await?;
        let refunds = self.store.refunds_of_order(&order.key).await?;
        let callback = match self.store.callback(&order.key).await? {
            Some(cb) => {
                let attempts = self.store.callback_attempts(&order.key).await?;
                Some((cb, attempts))
            }
            None => None,
        };
        let ledger = self.store.ledger_entries_of_order(&order.key).await?;
        Ok(OrderDetail {
            order,
            timeline,
            refunds,
            callback,
            ledger,
        })
    }

    /// A fresh refund order id for the console's refund form: rendered into the form, so that
    /// the form sent twice is one refund.
    pub fn new_console_refund_id(&self) -> Result<qrgate_domain::MerchantOrderId, ConsoleError> {
        Ok(self.new_till_order_id('C')?)
    }

    /// Refunds `amount` of the merchant's order, by [`Engine::refund`]'s rules (as REFUND on
    /// the wire), with `reason` kept in the audit log.
    pub async fn console_refund(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        key: &str,
        refund_order_id: &str,
        amount: Money,
        reason: &str,
    ) -> Result<RefundView, ConsoleError> {
        actor.check(merchant_id, Permission::Refund)?;
        let order = self.order_of(merchant_id, key).await?;
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ConsoleRule::ReasonLength {
                max: MAX_REASON_CHARS,
            }
            .into());
        }
        if reason.chars().any(char::is_control) {
            return Err(ConsoleRule::ReasonControl.into());
        }
        let refund_order_id = qrgate_domain::MerchantOrderId::parse(refund_order_id)
            .map_err(|_| ConsoleRule::RefundIdInvalid)?;
        let merchant = self.merchant(merchant_id).await?;
        if merchant.status != qrgate_domain::MerchantStatus::Active {
            // As on the wire, where a disabled merchant's REFUND is refused at sign-in.
            return Err(ConsoleRule::MerchantDisabled.into());
        }
        let before = order_json(&order);
        let view = self
            .refund(RefundOrder {
                merchant,
                refund_order_id: Some(refund_order_id),
                ori_order_id: order.order_id.clone(),
                amount,
                operator_id: None,
                approved_by: None,
            })
            .await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "refund",
                target: order.key.clone(),
                before: Some(before),
                after: Some(serde_json::json!({
                    "refund": view.refund.key,
                    "refund_order_id": view.refund.refund_order_id.as_str(),
                    "amount": view.refund.amount.minor(),
                    "status": view.refund.status.as_str(),
                    "reason": reason,
                    "order": order_json(&view.order),
                })),
            },
        )
        .await;
        Ok(view)
    }

    /// The merchant's notifications, newest first, each with its attempts.
    pub async fn console_callbacks(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        limit: i64,
    ) -> Result<Vec<(CallbackRecord, Vec<CallbackAttempt>)>, ConsoleError> {
        actor.check(merchant_id, Permission::ViewSales)?;
        let records = self
            .store
            .callback_records(Some(merchant_id), limit.clamp(1, MAX_PAGE))
            .await?;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let attempts = self.store.callback_attempts(&r.callback.order_key).await?;
            out.push((r, attempts));
        }
        Ok(out)
    }

    /// Sends the notification of the merchant's order again, from now.
    pub async fn console_retry_callback(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        order_key: &str,
    ) -> Result<(), ConsoleError> {
        actor.check(merchant_id, Permission::RetryCallback)?;
        let cb = self
            .store
            .callback_of_merchant(merchant_id, order_key)
            .await?
            .ok_or(ConsoleError::NotFound("notification"))?;
        if !self.store.retry_callback(order_key, self.now()).await? {
            return Err(ConsoleError::NotFound("notification"));
        }
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "callback.retry",
                target: order_key.to_owned(),
                before: Some(
                    serde_json::json!({"status": cb.status.as_str(), "attempts": cb.attempts}),
                ),
                after: Some(serde_json::json!({"status": "pending"})),
            },
        )
        .await;
        Ok(())
    }

    /// The merchant's shops, terminals and operators.
    pub async fn console_settings(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
    ) -> Result<(Merchant, Vec<Shop>, Vec<Terminal>, Vec<Operator>), ConsoleError> {
        let merchant = self.console_merchant(actor, merchant_id).await?;
        Ok((
            merchant,
            self.store.shops(merchant_id).await?,
            self.store.terminals(merchant_id).await?,
            self.store.operators(merchant_id).await?,
        ))
    }

    pub async fn console_add_shop(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        name: &str,
    ) -> Result<Shop, ConsoleError> {
        actor.check(merchant_id, Permission::ManageSettings)?;
        let shop = self.add_shop(merchant_id, name).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "shop.add",
                target: shop.id.to_string(),
                before: None,
                after: Some(serde_json::json!({"shop_id": shop.id.as_str(), "name": shop.name})),
            },
        )
        .await;
        Ok(shop)
    }

    pub async fn console_add_terminal(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        terminal_no: &TerminalNo,
        shop: Option<&ShopId>,
        name: Option<&str>,
    ) -> Result<Terminal, ConsoleError> {
        actor.check(merchant_id, Permission::ManageSettings)?;
        if let Some(shop) = shop {
            let own = self.store.shops(merchant_id).await?;
            if shop.merchant_id() != *merchant_id || !own.iter().any(|s| &s.id == shop) {
                return Err(ConsoleRule::NoSuchShop.into());
            }
        }
        let terminal = self
            .add_terminal(merchant_id, terminal_no, shop, name)
            .await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "terminal.add",
                target: terminal.terminal_no.to_string(),
                before: None,
                after: Some(serde_json::json!({
                    "terminal_no": terminal.terminal_no.as_str(),
                    "shop_id": terminal.shop_id.as_ref().map(ShopId::as_str),
                    "name": terminal.name,
                })),
            },
        )
        .await;
        Ok(terminal)
    }

    pub async fn console_add_operator(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        name: &str,
    ) -> Result<Operator, ConsoleError> {
        actor.check(merchant_id, Permission::ManageSettings)?;
        let op = self.add_operator(merchant_id, name).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "operator.add",
                target: op.id.to_string(),
                before: None,
                after: Some(serde_json::json!({"operator_id": op.id.as_str(), "name": op.name})),
            },
        )
        .await;
        Ok(op)
    }

    /// Sets an operator's till PIN by [`Engine::set_operator_pin`]'s rules.
    pub async fn console_set_pin(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        operator_id: &OperatorId,
        pin: &str,
    ) -> Result<(), ConsoleError> {
        actor.check(merchant_id, Permission::ManageSettings)?;
        if self
            .store
            .operator_pin(merchant_id, operator_id)
            .await?
            .is_none()
        {
            return Err(ConsoleError::NotFound("operator"));
        }
        self.set_operator_pin(merchant_id, operator_id, pin).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "operator.pin",
                target: operator_id.to_string(),
                before: None,
                after: Some(serde_json::json!({"pin": "set"})),
            },
        )
        .await;
        Ok(())
    }

    /// Rotates the merchant's sign key by [`Engine::rotate_sign_key`]'s rules; the new key
    /// is in the result only (never in the audit log).
    pub async fn console_rotate_key(
        &self,
        actor: &Actor,
        merchant_id: &MerchantId,
        grace: Option<Duration>,
    ) -> Result<RotatedKey, ConsoleError> {
        actor.check(merchant_id, Permission::ManageSettings)?;
        let before = self.store.merchant_keys(merchant_id).await?;
        let rotated = self.rotate_sign_key(merchant_id, grace).await?;
        self.audit(
            actor,
            Change {
                merchant: Some(merchant_id),
                action: "key.rotate",
                target: merchant_id.to_string(),
                before: before.map(|k| serde_json::json!({"key_version": k.version})),
                after: Some(serde_json::json!({
                    "key_version": rotated.version,
                    "previous_key_valid_until": rotated.previous_valid_until.map(|t| t.to_rfc3339()),
                })),
            },
        )
        .await;
        Ok(rotated)
    }

    /// The merchant's day of `at`, for forms that default to today.
    pub fn console_today(&self, merchant: &Merchant) -> NaiveDate {
        self.merchant_day(merchant, self.now())
    }

    /// The start of `day` in the merchant's time zone.
    pub fn console_start_of_day(
        &self,
        merchant: &Merchant,
        day: NaiveDate,
    ) -> Result<DateTime<Utc>, ConsoleError> {
        Ok(start_of_day(merchant, day)?)
    }
}
