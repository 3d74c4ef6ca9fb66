//! Refunds: reserved against their order when stored, finished with their ledger posting in
//! one transaction.

use chrono::{DateTime, Utc};
use qrgate_domain::{
    refund_posting, refund_txn, Account, Currency, MerchantId, MerchantOrderId, Money, Order,
    PostingKind, Refund, RefundBasis, RefundStatus, Wallet,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::claims::DueRows;
use crate::orders::{opt_ms, order_from_row, ORDER_COLUMNS};
use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

pub(crate) const REFUND_COLUMNS: &str =
    "key, merchant_id, refund_order_id, order_key, wallet, currency, \
    amount, cny_amount, status, wallet_code, wallet_message, channel_ref, sends, operator_id, \
    request_digest, wallet_created_at, next_check_at, finished_at, created_at, updated_at, \
    approved_by";

/// What storing a new refund did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundReservation {
    /// Stored, its amount reserved on the order.
    Reserved,
    /// Nothing stored: the order is not paid, or the amount exceeds what is left to refund.
    /// Carries the order as it stands.
    NotRefundable(Box<Order>),
}

pub(crate) fn refund_from_row(row: &AnyRow) -> Result<Refund, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let opt_text = |col: &str| {
        row.try_get::<Option<String>, _>(col)
            .map_err(StoreError::corrupt)
    };
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(StoreError::corrupt);
    let key = text("key")?;
    let bad = |what: &str| StoreError::corrupt(format!("refund {key}: bad {what}"));
    let currency: Currency = text("currency")?.parse().map_err(|_| bad("currency"))?;
    let cny: Option<i64> = row.try_get("cny_amount").map_err(StoreError::corrupt)?;
    Ok(Refund {
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(|_| bad("merchant id"))?,
        refund_order_id: MerchantOrderId::parse(&text("refund_order_id")?)
            .map_err(|_| bad("refund order id"))?,
        order_key: text("order_key")?,
        wallet: Wallet::parse(&text("wallet")?).ok_or_else(|| bad("wallet"))?,
        amount: Money::new(int("amount")?, currency),
        cny_amount: cny.map(|c| Money::new(c, Currency::Cny)),
        status: RefundStatus::parse(&text("status")?).ok_or_else(|| bad("status"))?,
        wallet_code: opt_text("wallet_code")?,
        wallet_message: opt_text("wallet_message")?,
        channel_ref: opt_text("channel_ref")?,
        sends: int("sends")?,
        operator_id: opt_text("operator_id")?,
        approved_by: opt_text("approved_by")?,
        request_digest: text("request_digest")?,
        wallet_created_at: from_millis(int("wallet_created_at")?)?,
        next_check_at: opt_ms(row, "next_check_at")?,
        finished_at: opt_ms(row, "finished_at")?,
        created_at: from_millis(int("created_at")?)?,
        updated_at: from_millis(int("updated_at")?)?,
        key,
    })
}

/// The claim condition on a refund, as in `update_order`: held by `$h` with a running lease,
/// or (holder `-`) by nobody whose lease runs.
fn claim_condition(holder: Option<&str>, h: usize, now: usize) -> String {
    match holder {
        Some(_) => format!("claimed_by = ${h} AND claimed_until >= ${now}"),
        None => format!("(claimed_until IS NULL OR claimed_until < ${now}) AND ${h} = '-'"),
    }
}

fn sqlx_err(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::from_sqlx(e, what)
}

impl Store {
    /// Stores a new refund and reserves its amount on its order, in one transaction: only if
    /// the order is paid and the refunds in progress or done, with this one, stay within what
    /// was paid. The check and the reservation are one conditional `UPDATE`, so refunds sent
    /// at the same moment cannot together exceed the payment. [`StoreError::Conflict`]
    /// `refund` when the merchant already has the refund order id or the request digest.
    ///
    /// The refund is stored claimed by `holder` until `lease_until` (the request path that
    /// sends it), so the refund loop leaves it alone meanwhile.
    pub async fn insert_refund(
        &self,
        r: &Refund,
        holder: &str,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<RefundReservation, StoreError> {
        let order_key = r.order_key.clone();
        let r = r.clone();
        let holder = holder.to_owned();
        let reserved = self
            .write("refund", move |conn| {
                Box::pin(async move { reserve_refund(conn, &r, &holder, lease_until, now).await })
            })
            .await?;
        if reserved {
            return Ok(RefundReservation::Reserved);
        }
        let order = self
            .order(&order_key)
            .await?
            .ok_or(StoreError::NotFound("order"))?;
        Ok(RefundReservation::NotRefundable(Box::new(order)))
    }

    async fn refund_where(&self, cond: &str, binds: &[&str]) -> Result<Option<Refund>, StoreError> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE {cond}");
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(*b);
        }
        let row = q
            .fetch_optional(&self.pool)
            .await
            .map_err(sqlx_err("refund"))?;
        row.as_ref().map(refund_from_row).transpose()
    }

    pub async fn refund(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        self.refund_where("key = $1", &[key]).await
    }

    /// The merchant's refund by its refund order id.
    pub async fn refund_by_order_id(
        &self,
        merchant: &MerchantId,
        refund_order_id: &MerchantOrderId,
    ) -> Result<Option<Refund>, StoreError> {
        self.refund_where(
            "merchant_id = $1 AND refund_order_id = $2",
            &[merchant.as_str(), refund_order_id.as_str()],
        )
        .await
    }

    /// The merchant's refund made by the request with this digest (a resent or replayed
    /// request).
    pub async fn refund_by_request_digest(
        &self,
        merchant: &MerchantId,
        digest: &str,
    ) -> Result<Option<Refund>, StoreError> {
        self.refund_where(
            "merchant_id = $1 AND request_digest = $2",
            &[merchant.as_str(), digest],
        )
        .await
    }

    /// The refunds of one order, oldest first.
    pub async fn refunds_of_order(&self, order_key: &str) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_key = $1 ORDER BY created_at, key"
        ))
        .bind(order_key)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlx_err("refund"))?;
        rows.iter().map(refund_from_row).collect()
    }

    /// The latest refunds, newest first, of one merchant or of all.
    pub async fn recent_refunds(
        &self,
        merchant: Option<&MerchantId>,
        limit: i64,
    ) -> Result<Vec<Refund>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE ($1 = '' OR merchant_id = $1) \
             ORDER BY created_at DESC, key DESC LIMIT $2"
        ))
        .bind(merchant.map_or("", MerchantId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(sqlx_err("refund"))?;
        rows.iter().map(refund_from_row).collect()
    }

    /// Counts one more send of a refund in progress, before it is sent, keeping `holder`'s
    /// claim and extending its lease to `lease_until` (to cover the send). Returns false when
    /// `holder` no longer holds it (its lease ran out).
    pub async fn count_refund_send(
        &self,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (key, holder) = (key.to_owned(), holder.to_owned());
        self.write_statement("refund", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE refunds SET sends = sends + 1, updated_at = $3, claimed_until = $4 \
                     WHERE key = $1 AND status = 'processing' AND claimed_by = $2 \
                     AND claimed_until >= $3",
                )
                .bind(key)
                .bind(holder)
                .bind(to_millis(now))
                .bind(to_millis(lease_until))
                .execute(conn)
                .await
                .map_err(sqlx_err("refund"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Makes a refund in progress due for the refund loop now. [`StoreError::NotFound`] when
    /// there is no such refund in progress.
    pub async fn requeue_refund(&self, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE refunds SET next_check_at = $2, updated_at = $2 WHERE key = $1 \
             AND status = 'processing'",
        )
        .bind(key)
        .bind(to_millis(now))
        .execute(&self.pool)
        .await
        .map_err(sqlx_err("refund"))?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound("refund in progress"))
        }
    }

    /// Writes what may change on a refund still in progress (the wallet's last word, the
    /// number of sends, the next check), only while `holder`'s claim runs (see
    /// `update_order`). Releases the claim. Returns whether the write happened.
    pub async fn update_processing_refund(
        &self,
        r: &Refund,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claim = claim_condition(holder, 7, 8);
        let sql = format!(
            "UPDATE refunds SET wallet_code = $1, wallet_message = $2, channel_ref = $3, \
             sends = $4, next_check_at = $5, updated_at = $8, claimed_by = NULL, \
             claimed_until = NULL WHERE key = $6 AND status = 'processing' AND {claim}"
        );
        let r = r.clone();
        let holder = holder.unwrap_or("-").to_owned();
        self.write_statement("refund", move |conn| {
            Box::pin(async move {
                let done = sqlx::query(&sql)
                    .bind(r.wallet_code.as_deref())
                    .bind(r.wallet_message.as_deref())
                    .bind(r.channel_ref.as_deref())
                    .bind(r.sends)
                    .bind(r.next_check_at.map(to_millis))
                    .bind(&r.key)
                    .bind(&holder)
                    .bind(to_millis(now))
                    .execute(conn)
                    .await
                    .map_err(sqlx_err("refund"))?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Finishes a refund in progress as `r.status` says (succeeded or failed), in one
    /// transaction with what it means for money: a success adds to the order's refunded
    /// amount and posts the refund to the ledger; a failure gives its reservation back. Only
    /// while `holder`'s claim runs. Returns the refund as finished, or `None` when it was no
    /// longer in progress (another worker finished it).
    pub async fn finish_refund(
        &self,
        r: &Refund,
        holder: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<Refund>, StoreError> {
        if !r.status.is_final() {
            return Err(StoreError::corrupt(format!(
                "refund {} cannot finish as {}",
                r.key, r.status
            )));
        }
        let r = r.clone();
        let holder = holder.map(str::to_owned);
        self.write("refund", move |conn| {
            Box::pin(async move { finish_refund(conn, &r, holder.as_deref(), now).await })
        })
        .await
    }

    /// Claims up to `limit` refunds due for a check, as `claim_due_orders` does for orders.
    pub async fn claim_due_refunds(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Refund>, StoreError> {
        self.claim_due_refunds_except(now, worker, lease_until, limit, &[])
            .await
    }

    /// [`Store::claim_due_refunds`], leaving the refunds of the wallets in `skip` alone.
    pub async fn claim_due_refunds_except(
        &self,
        now: DateTime<Utc>,
        worker: &str,
        lease_until: DateTime<Utc>,
        limit: i64,
        skip: &[Wallet],
    ) -> Result<Vec<Refund>, StoreError> {
        let rows = DueRows {
            table: "refunds",
            key: "key",
            due: "next_check_at IS NOT NULL AND next_check_at <= $3",
            order_by: "next_check_at",
            lane: "wallet",
            columns: REFUND_COLUMNS,
            what: "refund",
        };
        let skip: Vec<&str> = skip.iter().map(|w| w.as_str()).collect();
        let rows = self
            .claim_due(rows, now, worker, lease_until, limit, &skip)
            .await?;
        rows.iter().map(refund_from_row).collect()
    }

    /// Extends `holder`'s claim on a refund to `until`, only while it still holds it.
    /// Returns whether it did.
    pub async fn renew_refund_claim(
        &self,
        key: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.renew_claim("refunds", "key", key, holder, now, until)
            .await
    }
}

/// Adds a succeeded refund to its order and posts it; returns the CNY given back. The order's
/// row is updated first, which locks it (PostgreSQL) or holds the writer lock (SQLite), so the
/// amounts read after it are not moved by another refund before this one commits.
async fn post_refund(
    tx: &mut sqlx::AnyConnection,
    r: &Refund,
    now: DateTime<Utc>,
) -> Result<Option<Money>, StoreError> {
    let row = sqlx::query(&format!(
        "UPDATE orders SET refunded = refunded + $1, updated_at = $2 WHERE key = $3 \
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(r.amount.minor())
    .bind(to_millis(now))
    .bind(&r.order_key)
    .fetch_one(&mut *tx)
    .await
    .map_err(sqlx_err("order"))?;
    let order = order_from_row(&row)?;
    let currency = order.amount.currency();
    let entries: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT kind, account, amount, payer_amount FROM ledger_entries WHERE order_key = $1",
    )
    .bind(&order.key)
    .fetch_all(&mut *tx)
    .await
    .map_err(sqlx_err("ledger entry"))?;
    let wallet = Account::WalletClearing(order.wallet).to_string();
    let fees = Account::ProviderFees.to_string();
    let sum = |kind: PostingKind, account: &str, payer: bool| -> Option<i64> {
        let lines: Vec<_> = entries
            .iter()
            .filter(|(k, a, _, _)| k == kind.as_str() && a == account)
            .collect();
        if payer {
            // No line, or a line without the payer's amount: unknown, not zero.
            if lines.is_empty() {
                None
            } else {
                lines.iter().map(|l| l.3).sum()
            }
        } else {
            Some(lines.iter().map(|l| l.2).sum())
        }
    };
    let basis = RefundBasis {
        gross: order.total(),
        fee: Money::new(
            -sum(PostingKind::Payment, &fees, false).unwrap_or(0),
            currency,
        ),
        payer_paid: sum(PostingKind::Payment, &wallet, true).map(|p| Money::new(p, Currency::Cny)),
        refunded: Money::new(order.refunded.minor() - r.amount.minor(), currency),
        fee_returned: Money::new(
            sum(PostingKind::Refund, &fees, false).unwrap_or(0),
            currency,
        ),
        payer_returned: Some(Money::new(
            -sum(PostingKind::Refund, &wallet, true).unwrap_or(0),
            Currency::Cny,
        )),
        // What the wallet said this refund gave back, set by the engine from its answer.
        stated_payer_back: r.cny_amount,
        // (A refund posting's wallet leg carries CNY exactly when the payment's does.)
    };
    let posting = refund_posting(&order, &r.key, r.amount, &basis).map_err(StoreError::corrupt)?;
    debug_assert_eq!(posting.txn(), refund_txn(&r.key));
    crate::ledger::insert_posting(tx, &posting, &order.key, Some(&r.key), now).await?;
    Ok(posting
        .entries()
        .iter()
        .find_map(|e| e.payer_amount)
        .map(|p| Money::new(-p.minor(), p.currency())))
}

/// The transaction of [`Store::insert_refund`]: false when the order cannot take the refund.
async fn reserve_refund(
    conn: &mut sqlx::AnyConnection,
    r: &Refund,
    holder: &str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let reserved = sqlx::query(
        "UPDATE orders SET refund_reserved = refund_reserved + $1, updated_at = $2 \
         WHERE key = $3 AND status = 'paid' AND refund_reserved + $1 <= amount + tip",
    )
    .bind(r.amount.minor())
    .bind(to_millis(now))
    .bind(&r.order_key)
    .execute(&mut *conn)
    .await
    .map_err(sqlx_err("order"))?;
    if reserved.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query(&format!(
        "INSERT INTO refunds ({REFUND_COLUMNS}, claimed_by, claimed_until) VALUES ($1, $2, \
         $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
         $21, $22, $23)"
    ))
    .bind(&r.key)
    .bind(r.merchant_id.as_str())
    .bind(r.refund_order_id.as_str())
    .bind(&r.order_key)
    .bind(r.wallet.as_str())
    .bind(r.amount.currency().code())
    .bind(r.amount.minor())
    .bind(r.cny_amount.map(Money::minor))
    .bind(r.status.as_str())
    .bind(r.wallet_code.as_deref())
    .bind(r.wallet_message.as_deref())
    .bind(r.channel_ref.as_deref())
    .bind(r.sends)
    .bind(r.operator_id.as_deref())
    .bind(&r.request_digest)
    .bind(to_millis(r.wallet_created_at))
    .bind(r.next_check_at.map(to_millis))
    .bind(r.finished_at.map(to_millis))
    .bind(to_millis(r.created_at))
    .bind(to_millis(r.updated_at))
    .bind(r.approved_by.as_deref())
    .bind(holder)
    .bind(to_millis(lease_until))
    .execute(&mut *conn)
    .await
    .map_err(sqlx_err("refund"))?;
    Ok(true)
}

/// The transaction of [`Store::finish_refund`].
async fn finish_refund(
    conn: &mut sqlx::AnyConnection,
    r: &Refund,
    holder: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Refund>, StoreError> {
    let claim = claim_condition(holder, 7, 8);
    let done = sqlx::query(&format!(
        "UPDATE refunds SET status = $1, wallet_code = $2, wallet_message = $3, \
         channel_ref = $4, sends = $5, next_check_at = NULL, finished_at = $8, \
         updated_at = $8, claimed_by = NULL, claimed_until = NULL \
         WHERE key = $6 AND status = 'processing' AND {claim}"
    ))
    .bind(r.status.as_str())
    .bind(r.wallet_code.as_deref())
    .bind(r.wallet_message.as_deref())
    .bind(r.channel_ref.as_deref())
    .bind(r.sends)
    .bind(&r.key)
    .bind(holder.unwrap_or("-"))
    .bind(to_millis(now))
    .execute(&mut *conn)
    .await
    .map_err(sqlx_err("refund"))?;
    if done.rows_affected() != 1 {
        return Ok(None);
    }
    let mut finished = r.clone();
    finished.next_check_at = None;
    finished.finished_at = Some(now);
    finished.updated_at = now;
    match r.status {
        RefundStatus::Succeeded => {
            finished.cny_amount = post_refund(conn, r, now).await?;
            sqlx::query("UPDATE refunds SET cny_amount = $1 WHERE key = $2")
                .bind(finished.cny_amount.map(Money::minor))
                .bind(&r.key)
                .execute(&mut *conn)
                .await
                .map_err(sqlx_err("refund"))?;
        }
        _ => {
            sqlx::query(
                "UPDATE orders SET refund_reserved = refund_reserved - $1, updated_at = $2 \
                 WHERE key = $3",
            )
            .bind(r.amount.minor())
            .bind(to_millis(now))
            .bind(&r.order_key)
            .execute(&mut *conn)
            .await
            .map_err(sqlx_err("order"))?;
        }
    }
    Ok(Some(finished))
}
