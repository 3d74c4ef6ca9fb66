use chrono::{DateTime, Utc};
use qrgate_domain::{
    payment_posting, Currency, FeeRate, FxRate, MerchantId, MerchantOrderId, Money, Order,
    OrderStatus, PaymentMode, Wallet,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::claims::DueRows;
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

pub(crate) const ORDER_COLUMNS: &str =
    "key, merchant_id, order_id, mode, wallet, currency, amount, tip, \
    cny_amount, rate_e8, operator_id, terminal_no, sale_num, status, wallet_code, wallet_message, \
    channel_ref, buyer, paid_at, wallet_created_at, next_check_at, request_digest, created_at, \
    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded, cancel_requested_at";

/// What was done with a late payment (an order paid after someone asked to cancel it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePayment {
    /// Refunded to the customer in full.
    Refunded,
    /// Kept: the customer meant to pay (they paid nothing else for the sale).
    Kept,
}

impl LatePayment {
    pub fn as_str(self) -> &'static str {
        match self {
            LatePayment::Refunded => "refunded",
            LatePayment::Kept => "kept",
        }
    }
}

/// One wallet call on an order's timeline. Never holds a payment code or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub at: DateTime<Utc>,
    /// `pay`, `query`, `reverse`, …
    pub operation: String,
    /// The normalised outcome (`paid`, `pending_user`, `declined`, `outcome_unknown`, …).
    pub outcome: String,
    pub wallet_code: Option<String>,
    /// What was sent, in words (amounts, never a payment code or a key).
    pub detail: Option<String>,
    pub latency_ms: i64,
    /// Who made the call: the gateway process (node and run), so that a timeline shows which
    /// worker acted when. `None` on calls recorded before it was kept.
    pub worker: Option<String>,
}

pub(crate) fn opt_ms(row: &AnyRow, col: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let v: Option<i64> = row.try_get(col).map_err(StoreError::corrupt)?;
    v.map(from_millis).transpose()
}

async fn insert_event(
    conn: &mut sqlx::AnyConnection,
    key: &str,
    event: &OrderEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, \
         created_at, updated_at, detail, worker) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(key)
    .bind(&event.operation)
    .bind(&event.outcome)
    .bind(event.wallet_code.as_deref())
    .bind(event.latency_ms)
    .bind(to_millis(event.at))
    .bind(event.detail.as_deref())
    .bind(event.worker.as_deref())
    .execute(&mut *conn)
    .await
    .map(|_| ())
    .map_err(|e| StoreError::from_sqlx(e, "order event"))
}

pub(crate) fn order_from_row(row: &AnyRow) -> Result<Order, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let opt_text = |col: &str| {
        row.try_get::<Option<String>, _>(col)
            .map_err(StoreError::corrupt)
    };
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    let key = text("key")?;
    let bad = |what: &str| StoreError::corrupt(format!("order {key}: bad {what}"));
    let currency: Currency = text("currency")?.parse().map_err(|_| bad("currency"))?;
    let cny: Option<i64> = row.try_get("cny_amount").map_err(StoreError::corrupt)?;
    let rate: Option<i64> = row.try_get("rate_e8").map_err(StoreError::corrupt)?;
    Ok(Order {
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(|_| bad("merchant id"))?,
        order_id: MerchantOrderId::parse(&text("order_id")?).map_err(|_| bad("order id"))?,
        mode: PaymentMode::parse(&text("mode")?).ok_or_else(|| bad("mode"))?,
        wallet: Wallet::parse(&text("wallet")?).ok_or_else(|| bad("wallet"))?,
        amount: Money::new(int("amount")?, currency),
        tip: Money::new(int("tip")?, currency),
        cny_amount: cny.map(|c| Money::new(c, Currency::Cny)),
        rate: rate.and_then(FxRate::from_scaled),
        operator_id: opt_text("operator_id")?,
        terminal_no: opt_text("terminal_no")?,
        sale_num: opt_text("sale_num")?,
        status: OrderStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
        wallet_code: opt_text("wallet_code")?,
        wallet_message: opt_text("wallet_message")?,
        channel_ref: opt_text("channel_ref")?,
        buyer: opt_text("buyer")?,
        paid_at: opt_ms(row, "paid_at")?,
        wallet_created_at: from_millis(int("wallet_created_at")?)?,
        next_check_at: opt_ms(row, "next_check_at")?,
        request_digest: text("request_digest")?,
        code_url: opt_text("code_url")?,
        expires_at: opt_ms(row, "expires_at")?,
        call_back_url: opt_text("call_back_url")?,
        refund_reserved: Money::new(int("refund_reserved")?, currency),
        refunded: Money::new(int("refunded")?, currency),
        cancel_requested_at: opt_ms(row, "cancel_requested_at")?,
        created_at: from_millis(int("created_at")?)?,
        updated_at: from_millis(int("updated_at")?)?,
        key,
    })
}

impl Store {
    /// Stores a new order. [`StoreError::Conflict`] `order` when the merchant already has
    /// that `order_id`.
    pub async fn insert_order(&self, o: &Order) -> Result<(), StoreError> {
        let o = o.clone();
        self.write_statement("order", move |conn| {
            Box::pin(async move { insert_order(conn, &o).await })
        })
        .await
    }

    pub async fn order(&self, key: &str) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// The merchant's order made from exactly this request content, if any.
    pub async fn order_by_request_digest(
        &self,
        merchant_id: &MerchantId,
        digest: &str,
    ) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND request_digest = $2"
        ))
        .bind(merchant_id.as_str())
        .bind(digest)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        row.as_ref().map(order_from_row).transpose()
    }

    pub async fn order_by_merchant_order_id(
        &self,
        merchant_id: &MerchantId,
        order_id: &MerchantOrderId,
    ) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND order_id = $2"
        ))
        .bind(merchant_id.as_str())
        .bind(order_id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// Writes what may change on an order, only if it is still in status `from` and its claim
    /// is as expected: held by `holder` with a lease still running, or (with `None`) held by
    /// nobody whose lease runs. So a worker whose lease ran out, or a request path that stalled
    /// while the closing loop took over, cannot overwrite a newer state. Releases the claim.
    /// Returns whether the write happened.
    pub async fn update_order(
        &self,
        o: &Order,
        from: OrderStatus,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.update_order_recorded(o, from, holder, now, None).await
    }

    /// [`Store::update_order`], with the wallet call that led to it written on the order's
    /// timeline in the same transaction: one commit instead of two on the payment paths. The
    /// event is kept even when the order is not written (the call happened all the same).
    pub async fn update_order_recorded(
        &self,
        o: &Order,
        from: OrderStatus,
        holder: Option<&str>,
        now: DateTime<Utc>,
        event: Option<&OrderEvent>,
    ) -> Result<bool, StoreError> {
        let o = o.clone();
        let holder = holder.map(str::to_owned);
        let event = event.cloned();
        self.write("order", move |conn| {
            Box::pin(async move {
                write_order(conn, &o, from, holder.as_deref(), now, event.as_ref(), None).await
            })
        })
        .await
    }

    /// Claims up to `limit` orders due for a check at `now` for `worker` until `lease_until`,
    /// skipping orders another worker holds (exclusive across nodes: see `claims.rs`).
    pub async fn claim_due_orders(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        self.claim_due_orders_except(now, worker, lease_until, limit, &[])
            .await
    }

    /// [`Store::claim_due_orders`], leaving the orders of the wallets in `skip` alone (this
    /// worker has as many of theirs in hand as it may).
    pub async fn claim_due_orders_except(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
        skip: &[Wallet],
    ) -> Result<Vec<Order>, StoreError> {
        let rows = DueRows {
            table: "orders",
            key: "key",
            due: "next_check_at IS NOT NULL AND next_check_at <= $3",
            order_by: "next_check_at",
            lane: "wallet",
            columns: ORDER_COLUMNS,
            what: "order",
        };
        let skip: Vec<&str> = skip.iter().map(|w| w.as_str()).collect();
        let rows = self
            .claim_due(rows, now, worker, lease_until, limit, &skip)
            .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Extends `holder`'s claim on an order to `until`, only while it still holds it.
    /// Returns whether it did.
    pub async fn renew_order_claim(
        &self,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.renew_claim("orders", "key", key, holder, now, until)
            .await
    }

    /// [`Store::update_order`] by the claim's holder, which keeps holding the order until
    /// `lease_until` instead of releasing it: for a decision written before the wallet call
    /// that carries it out (`reversing`), so that nobody else acts on the order meanwhile.
    pub async fn update_order_held(
        &self,
        o: &Order,
        from: OrderStatus,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let o = o.clone();
        let holder = holder.to_owned();
        self.write("order", move |conn| {
            Box::pin(async move {
                write_order(conn, &o, from, Some(&holder), now, None, Some(lease_until)).await
            })
        })
        .await
    }

    /// Records that `by` asked at `now` to cancel an open order (the first request is kept)
    /// and makes a waiting order due for the closing loop at once; a `paying` order (its
    /// wallet call may be in flight) keeps its check time, after the call's budget. Returns
    /// whether the order was open.
    pub async fn request_order_cancel(
        &self,
        key: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (key, by) = (key.to_owned(), by.to_owned());
        self.write_statement("order", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE orders SET cancel_requested_at = COALESCE(cancel_requested_at, $2), \
                     cancel_requested_by = COALESCE(cancel_requested_by, $3), \
                     next_check_at = CASE WHEN status IN ('pending', 'unknown') THEN $2 \
                     ELSE next_check_at END, updated_at = $2 \
                     WHERE key = $1 AND status IN ('paying', 'pending', 'unknown', 'reversing')",
                )
                .bind(&key)
                .bind(to_millis(now))
                .bind(&by)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected() == 1)
                .map_err(|e| StoreError::from_sqlx(e, "order"))
            })
        })
        .await
    }

    /// Claims one order for `holder` until `until`, if it may still need work
    /// (`next_check_at` set) and nobody's lease on it runs. Exclusive across nodes like
    /// [`Store::claim_due_orders`]: the condition is checked in the one `UPDATE`.
    pub async fn claim_order(
        &self,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Order>, StoreError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        let row = self
            .write_statement("order", move |conn| {
                Box::pin(async move {
                    sqlx::query(&format!(
                        "UPDATE orders SET claimed_by = $2, claimed_until = $3 \
                         WHERE key = $1 AND next_check_at IS NOT NULL \
                         AND (claimed_until IS NULL OR claimed_until < $4) \
                         RETURNING {ORDER_COLUMNS}"
                    ))
                    .bind(&key)
                    .bind(&holder)
                    .bind(to_millis(until))
                    .bind(to_millis(now))
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx(e, "order"))
                })
            })
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }

    /// The merchant's late payments: orders someone asked to cancel that were paid all the
    /// same, that nobody has refunded or kept yet; oldest first, at most `limit`.
    pub async fn late_payments(
        &self,
        merchant_id: &MerchantId,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND status = 'paid' \
             AND cancel_requested_at IS NOT NULL AND late_payment IS NULL \
             ORDER BY paid_at, key LIMIT $2"
        ))
        .bind(merchant_id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
        rows.iter().map(order_from_row).collect()
    }

    /// Records what `by` did with a late payment. False when the order is no late payment
    /// or its outcome was recorded before (the first one stands).
    pub async fn resolve_late_payment(
        &self,
        key: &str,
        outcome: LatePayment,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (key, by) = (key.to_owned(), by.to_owned());
        self.write_statement("order", move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE orders SET late_payment = $2, late_payment_by = $3, \
                     late_payment_at = $4, updated_at = $4 \
                     WHERE key = $1 AND status = 'paid' AND cancel_requested_at IS NOT NULL \
                     AND late_payment IS NULL",
                )
                .bind(&key)
                .bind(outcome.as_str())
                .bind(&by)
                .bind(to_millis(now))
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected() == 1)
                .map_err(|e| StoreError::from_sqlx(e, "order"))
            })
        })
        .await
    }

    /// How many orders are not final yet (for tests and health).
    pub async fn open_order_count(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE next_check_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "order"))
    }

    pub async fn add_order_event(&self, key: &str, event: &OrderEvent) -> Result<(), StoreError> {
        let (key, event) = (key.to_owned(), event.clone());
        self.write_statement("order event", move |conn| {
            Box::pin(async move { insert_event(conn, &key, &event).await })
        })
        .await
    }

    /// An order's timeline, oldest first.
    pub async fn order_events(&self, key: &str) -> Result<Vec<OrderEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT operation, outcome, wallet_code, latency_ms, created_at, detail, worker \
             FROM order_events WHERE order_key = $1 ORDER BY id",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order event"))?;
        rows.iter()
            .map(|row| {
                Ok(OrderEvent {
                    at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
                    operation: row.try_get("operation").map_err(StoreError::corrupt)?,
                    outcome: row.try_get("outcome").map_err(StoreError::corrupt)?,
                    wallet_code: row.try_get("wallet_code").map_err(StoreError::corrupt)?,
                    detail: row.try_get("detail").map_err(StoreError::corrupt)?,
                    latency_ms: row.try_get("latency_ms").map_err(StoreError::corrupt)?,
                    worker: row.try_get("worker").map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }
}

/// Inserts `o` (see [`Store::insert_order`]).
async fn insert_order(conn: &mut sqlx::AnyConnection, o: &Order) -> Result<(), StoreError> {
    // A new order has no refunds: `refund_reserved` and `refunded` take their default 0.
    sqlx::query(
        "INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, \
         cny_amount, rate_e8, operator_id, terminal_no, sale_num, status, wallet_code, \
         wallet_message, channel_ref, buyer, paid_at, wallet_created_at, next_check_at, \
         request_digest, created_at, updated_at, code_url, expires_at, call_back_url) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(&o.key)
    .bind(o.merchant_id.as_str())
    .bind(o.order_id.as_str())
    .bind(o.mode.as_str())
    .bind(o.wallet.as_str())
    .bind(o.amount.currency().code())
    .bind(o.amount.minor())
    .bind(o.tip.minor())
    .bind(o.cny_amount.map(Money::minor))
    .bind(o.rate.map(FxRate::scaled))
    .bind(o.operator_id.as_deref())
    .bind(o.terminal_no.as_deref())
    .bind(o.sale_num.as_deref())
    .bind(o.status.as_str())
    .bind(o.wallet_code.as_deref())
    .bind(o.wallet_message.as_deref())
    .bind(o.channel_ref.as_deref())
    .bind(o.buyer.as_deref())
    .bind(o.paid_at.map(to_millis))
    .bind(to_millis(o.wallet_created_at))
    .bind(o.next_check_at.map(to_millis))
    .bind(&o.request_digest)
    .bind(to_millis(o.created_at))
    .bind(to_millis(o.updated_at))
    .bind(o.code_url.as_deref())
    .bind(o.expires_at.map(to_millis))
    .bind(o.call_back_url.as_deref())
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| StoreError::from_sqlx(e, "order"))
}

/// The transaction of [`Store::update_order_recorded`] (and, with `keep_until`, of
/// [`Store::update_order_held`]), on the caller's connection.
async fn write_order(
    conn: &mut sqlx::AnyConnection,
    o: &Order,
    from: OrderStatus,
    holder: Option<&str>,
    now: DateTime<Utc>,
    event: Option<&OrderEvent>,
    keep_until: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let claim = match holder {
        Some(_) => "claimed_by = $13 AND claimed_until >= $14",
        // `$13` is always bound, so both forms have the same parameters.
        None => "(claimed_until IS NULL OR claimed_until < $14) AND $13 = '-'",
    };
    // Released, or kept by its holder with a new lease (`$16`, bound only then).
    let keep_until = keep_until.filter(|_| holder.is_some());
    let after = match keep_until {
        Some(_) => "claimed_until = $16",
        None => "claimed_by = NULL, claimed_until = NULL",
    };
    if let Some(event) = event {
        insert_event(conn, &o.key, event).await?;
    }
    // The merchant's fee comes back with the write (the ledger needs it when the order
    // becomes paid): one statement fewer than reading it after.
    let sql = format!(
        "UPDATE orders SET status = $1, wallet_code = $2, wallet_message = $3, channel_ref = $4, \
         buyer = $5, paid_at = $6, cny_amount = $7, rate_e8 = $8, next_check_at = $9, \
         {after}, updated_at = $10, code_url = $15 \
         WHERE key = $11 AND status = $12 AND {claim} \
         RETURNING (SELECT fee_bps FROM merchants WHERE id = orders.merchant_id) AS fee_bps"
    );
    let query = sqlx::query(&sql)
        .bind(o.status.as_str())
        .bind(o.wallet_code.as_deref())
        .bind(o.wallet_message.as_deref())
        .bind(o.channel_ref.as_deref())
        .bind(o.buyer.as_deref())
        .bind(o.paid_at.map(to_millis))
        .bind(o.cny_amount.map(Money::minor))
        .bind(o.rate.map(FxRate::scaled))
        .bind(o.next_check_at.map(to_millis))
        .bind(to_millis(o.updated_at))
        .bind(&o.key)
        .bind(from.as_str())
        .bind(holder.unwrap_or("-"))
        .bind(to_millis(now))
        .bind(o.code_url.as_deref());
    let query = match keep_until {
        Some(until) => query.bind(to_millis(until)),
        None => query,
    };
    let written = query
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "order"))?;
    let Some(written) = written else {
        // Not written; the event, if any, is committed all the same.
        return Ok(false);
    };
    // The ledger: an order that becomes paid posts its payment in the same transaction,
    // so money is never recorded for a state that was not stored, nor the other way round.
    if o.status == OrderStatus::Paid && from != OrderStatus::Paid {
        let fee_bps: i64 = written.try_get("fee_bps").map_err(StoreError::corrupt)?;
        let fee_rate = FeeRate::from_bps(fee_bps).map_err(StoreError::corrupt)?;
        let posting = payment_posting(o, fee_rate).map_err(StoreError::corrupt)?;
        crate::ledger::insert_posting(conn, &posting, &o.key, None, now).await?;
    }
    // The outbox: an order that becomes paid owes its merchant a notification, queued in
    // the same transaction, so it can be neither lost nor sent for a state never stored.
    if let (OrderStatus::Paid, Some(url)) = (o.status, o.call_back_url.as_deref()) {
        if from != OrderStatus::Paid {
            sqlx::query(
                "INSERT INTO callbacks (order_key, merchant_id, url, status, attempts, \
                 next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) ON CONFLICT (order_key) DO NOTHING",
            )
            .bind(&o.key)
            .bind(o.merchant_id.as_str())
            .bind(url)
            .bind(to_millis(now))
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "callback"))?;
        }
    }
    Ok(true)
}
