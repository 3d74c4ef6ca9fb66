use chrono::{DateTime, Utc};
use qrgate_domain::{
    Currency, FeeRate, Merchant, MerchantId, MerchantStatus, MerchantTimeZone, Operator,
    OperatorId, OperatorStatus, Shop, ShopId, Terminal, TerminalNo,
};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::time::{from_millis, to_millis};
use crate::{Store, StoreError};

/// How many times an insert that allocates the next number is retried after losing a race.
pub const ALLOCATION_ATTEMPTS: u32 = 8;

/// What is needed to onboard a merchant. The sign key arrives already encrypted (for this id):
/// the store never sees a plaintext key.
#[derive(Debug, Clone)]
pub struct NewMerchant {
    /// From [`Store::next_merchant_id`].
    pub id: MerchantId,
    pub name: String,
    pub currency: Currency,
    pub time_zone: MerchantTimeZone,
    pub sign_key_enc: Vec<u8>,
    pub first_shop_name: String,
    pub first_operator_name: String,
}

/// A merchant just created, with its first shop and operator.
#[derive(Debug, Clone)]
pub struct NewMerchantCreated {
    pub merchant: Merchant,
    pub shop: Shop,
    pub operator: Operator,
}

/// A merchant with its encrypted sign keys: the current one and, during a rotation's grace
/// period, the previous one with the time it stops being accepted.
#[derive(Debug, Clone)]
pub struct MerchantKeys {
    pub merchant: Merchant,
    pub current_enc: Vec<u8>,
    pub version: i64,
    pub previous: Option<(Vec<u8>, DateTime<Utc>)>,
}

const MERCHANT_COLUMNS: &str =
    "id, name, currency, time_zone, status, fee_bps, created_at, updated_at";

fn merchant_from_row(row: &AnyRow) -> Result<Merchant, StoreError> {
    let get_text = |col: &str| -> Result<String, StoreError> {
        row.try_get::<String, _>(col).map_err(StoreError::corrupt)
    };
    let get_ms = |col: &str| -> Result<DateTime<Utc>, StoreError> {
        from_millis(row.try_get::<i64, _>(col).map_err(StoreError::corrupt)?)
    };
    let id = get_text("id")?;
    Ok(Merchant {
        id: MerchantId::parse(&id).map_err(StoreError::corrupt)?,
        name: get_text("name")?,
        currency: get_text("currency")?.parse().map_err(StoreError::corrupt)?,
        time_zone: get_text("time_zone")?
            .parse()
            .map_err(StoreError::corrupt)?,
        status: MerchantStatus::parse(&get_text("status")?)
            .ok_or_else(|| StoreError::corrupt(format!("merchant {id}: unknown status")))?,
        fee_rate: FeeRate::from_bps(
            row.try_get::<i64, _>("fee_bps")
                .map_err(StoreError::corrupt)?,
        )
        .map_err(StoreError::corrupt)?,
        created_at: get_ms("created_at")?,
        updated_at: get_ms("updated_at")?,
    })
}

pub(crate) fn operator_from_row(row: &AnyRow) -> Result<Operator, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    Ok(Operator {
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(StoreError::corrupt)?,
        id: OperatorId::parse(&text("id")?).map_err(StoreError::corrupt)?,
        name: text("name")?,
        status: OperatorStatus::parse(&text("status")?)
            .ok_or_else(|| StoreError::corrupt("operator: unknown status"))?,
        created_at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

fn shop_from_row(row: &AnyRow) -> Result<Shop, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    Ok(Shop {
        id: ShopId::parse(&text("id")?).map_err(StoreError::corrupt)?,
        name: text("name")?,
        created_at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

fn terminal_from_row(row: &AnyRow) -> Result<Terminal, StoreError> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(StoreError::corrupt);
    let shop_id: Option<String> = row.try_get("shop_id").map_err(StoreError::corrupt)?;
    Ok(Terminal {
        merchant_id: MerchantId::parse(&text("merchant_id")?).map_err(StoreError::corrupt)?,
        terminal_no: TerminalNo::parse(&text("terminal_no")?).map_err(StoreError::corrupt)?,
        shop_id: shop_id
            .map(|s| ShopId::parse(&s))
            .transpose()
            .map_err(StoreError::corrupt)?,
        name: text("name")?,
        created_at: from_millis(row.try_get("created_at").map_err(StoreError::corrupt)?)?,
    })
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::corrupt(format!("negative sequence number {n}")))
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::corrupt(format!("sequence number {n} too large")))
}

/// Inserts a merchant with its first shop (`…001`) and first operator (`0000000001`) on the
/// caller's transaction. The merchant's number is its id's: [`Store::next_merchant_id`]
/// allocates above every number stored, so an id created later never equals one imported.
async fn insert_merchant(
    conn: &mut sqlx::AnyConnection,
    new: &NewMerchant,
    ms: i64,
) -> Result<(), StoreError> {
    let id = &new.id;
    let shop_id = ShopId::new(id, 1).map_err(StoreError::corrupt)?;
    let operator_id = OperatorId::from_number(1).map_err(StoreError::corrupt)?;
    sqlx::query(
        "INSERT INTO merchants (id, seq, name, currency, time_zone, status, sign_key_enc, \
         sign_key_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6, 1, $7, $7)",
    )
    .bind(id.as_str())
    .bind(to_i64(id.number())?)
    .bind(&new.name)
    .bind(new.currency.code())
    .bind(new.time_zone.name())
    .bind(&new.sign_key_enc)
    .bind(ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
    sqlx::query(
        "INSERT INTO shops (id, merchant_id, number, name, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $4)",
    )
    .bind(shop_id.as_str())
    .bind(id.as_str())
    .bind(&new.first_shop_name)
    .bind(ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "shop"))?;
    sqlx::query(
        "INSERT INTO operators (merchant_id, id, number, name, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $4)",
    )
    .bind(id.as_str())
    .bind(operator_id.as_str())
    .bind(&new.first_operator_name)
    .bind(ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
    Ok(())
}

impl Store {
    /// The next free merchant id with `prefix`. Merchant numbers are global across prefixes
    /// (`UNIQUE (seq)`), and the next is one above the highest stored, imported ids included,
    /// so it is never an id already taken. Two callers may get the same id; the second
    /// [`Store::create_merchant`] then fails with [`StoreError::Conflict`] and the caller asks
    /// again.
    pub async fn next_merchant_id(&self, prefix: &str) -> Result<MerchantId, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM merchants")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        let seq = to_u64(last)? + 1;
        if seq > MerchantId::MAX_NUMBER {
            return Err(StoreError::Exhausted("merchant id"));
        }
        MerchantId::from_parts(prefix, seq).map_err(StoreError::Invalid)
    }

    /// Creates a merchant, its first shop (`…001`) and its first operator (`0000000001`), in
    /// one transaction. [`StoreError::Conflict`] if the id, or its number under another
    /// prefix, is taken.
    pub async fn create_merchant(
        &self,
        new: &NewMerchant,
        now: DateTime<Utc>,
    ) -> Result<NewMerchantCreated, StoreError> {
        let err = |e| StoreError::from_sqlx(e, "merchant");
        let mut tx = self.pool.begin().await.map_err(err)?;
        insert_merchant(&mut tx, new, to_millis(now)).await?;
        tx.commit().await.map_err(err)?;
        self.created(new).await
    }

    /// Creates every merchant of `merchants` as [`Store::create_merchant`] does, in one
    /// transaction: all of them or, on any error (a taken id or number, a crash), none.
    pub async fn import_merchants(
        &self,
        merchants: &[NewMerchant],
        now: DateTime<Utc>,
    ) -> Result<Vec<NewMerchantCreated>, StoreError> {
        let err = |e| StoreError::from_sqlx(e, "merchant");
        let ms = to_millis(now);
        let mut tx = self.pool.begin().await.map_err(err)?;
        for new in merchants {
            insert_merchant(&mut tx, new, ms).await?;
        }
        tx.commit().await.map_err(err)?;
        let mut created = Vec::with_capacity(merchants.len());
        for new in merchants {
            created.push(self.created(new).await?);
        }
        Ok(created)
    }

    /// The merchant just created from `new`, with its first shop and operator.
    async fn created(&self, new: &NewMerchant) -> Result<NewMerchantCreated, StoreError> {
        let merchant = self
            .merchant(&new.id)
            .await?
            .ok_or(StoreError::NotFound("merchant"))?;
        Ok(NewMerchantCreated {
            shop: Shop {
                id: ShopId::new(&new.id, 1).map_err(StoreError::corrupt)?,
                name: new.first_shop_name.clone(),
                created_at: merchant.created_at,
            },
            operator: Operator {
                merchant_id: new.id.clone(),
                id: OperatorId::from_number(1).map_err(StoreError::corrupt)?,
                name: new.first_operator_name.clone(),
                status: OperatorStatus::Active,
                created_at: merchant.created_at,
            },
            merchant,
        })
    }

    pub async fn merchant(&self, id: &MerchantId) -> Result<Option<Merchant>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        row.as_ref().map(merchant_from_row).transpose()
    }

    /// Every merchant, oldest first.
    pub async fn merchants(&self) -> Result<Vec<Merchant>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MERCHANT_COLUMNS} FROM merchants ORDER BY seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        rows.iter().map(merchant_from_row).collect()
    }

    /// The merchant with its encrypted sign keys, for decoding a POS request.
    pub async fn merchant_keys(&self, id: &MerchantId) -> Result<Option<MerchantKeys>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MERCHANT_COLUMNS}, sign_key_enc, sign_key_version, previous_sign_key_enc, \
             previous_sign_key_until FROM merchants WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        let Some(row) = row else { return Ok(None) };
        let merchant = merchant_from_row(&row)?;
        let previous_enc: Option<Vec<u8>> = row
            .try_get("previous_sign_key_enc")
            .map_err(StoreError::corrupt)?;
        let previous_until: Option<i64> = row
            .try_get("previous_sign_key_until")
            .map_err(StoreError::corrupt)?;
        let previous = match (previous_enc, previous_until) {
            (Some(enc), Some(until)) => Some((enc, from_millis(until)?)),
            _ => None,
        };
        Ok(Some(MerchantKeys {
            merchant,
            current_enc: row.try_get("sign_key_enc").map_err(StoreError::corrupt)?,
            version: row
                .try_get("sign_key_version")
                .map_err(StoreError::corrupt)?,
            previous,
        }))
    }

    /// Enables or disables a merchant.
    pub async fn set_merchant_status(
        &self,
        id: &MerchantId,
        status: MerchantStatus,
        now: DateTime<Utc>,
    ) -> Result<Merchant, StoreError> {
        let done = sqlx::query("UPDATE merchants SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(to_millis(now))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("merchant"));
        }
        self.merchant(id)
            .await?
            .ok_or(StoreError::NotFound("merchant"))
    }

    /// Sets the provider's fee on the merchant's future payments (payments already posted
    /// keep the fee they were posted with).
    pub async fn set_merchant_fee_rate(
        &self,
        id: &MerchantId,
        rate: FeeRate,
        now: DateTime<Utc>,
    ) -> Result<Merchant, StoreError> {
        let done = sqlx::query("UPDATE merchants SET fee_bps = $1, updated_at = $2 WHERE id = $3")
            .bind(rate.bps())
            .bind(to_millis(now))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "merchant"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("merchant"));
        }
        self.merchant(id)
            .await?
            .ok_or(StoreError::NotFound("merchant"))
    }

    /// Replaces the merchant's sign key. With `previous_until`, the old key stays accepted
    /// until then (a grace period for updating the POS); without, it stops working at once.
    /// Returns the new key version.
    pub async fn replace_sign_key(
        &self,
        id: &MerchantId,
        new_enc: &[u8],
        previous_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let sql = if previous_until.is_some() {
            "UPDATE merchants SET previous_sign_key_enc = sign_key_enc, \
             previous_sign_key_until = $1, sign_key_enc = $2, \
             sign_key_version = sign_key_version + 1, updated_at = $3 WHERE id = $4 \
             RETURNING sign_key_version"
        } else {
            "UPDATE merchants SET previous_sign_key_enc = NULL, \
             previous_sign_key_until = $1, sign_key_enc = $2, \
             sign_key_version = sign_key_version + 1, updated_at = $3 WHERE id = $4 \
             RETURNING sign_key_version"
        };
        sqlx::query_scalar::<_, i64>(sql)
            .bind(previous_until.map(to_millis))
            .bind(new_enc)
            .bind(to_millis(now))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "merchant"))?
            .ok_or(StoreError::NotFound("merchant"))
    }

    /// Adds an operator with the merchant's next free operator id.
    pub async fn add_operator(
        &self,
        merchant_id: &MerchantId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Operator, StoreError> {
        self.require_merchant(merchant_id).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let last: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) FROM operators WHERE merchant_id = $1",
                )
                .bind(merchant_id.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
                let number = to_u64(last)? + 1;
                let id = OperatorId::from_number(number)
                    .map_err(|_| StoreError::Exhausted("operator id"))?;
                let row = sqlx::query(
                    "INSERT INTO operators (merchant_id, id, number, name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) \
                     RETURNING merchant_id, id, name, status, created_at",
                )
                .bind(merchant_id.as_str())
                .bind(id.as_str())
                .bind(to_i64(number)?)
                .bind(name)
                .bind(to_millis(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
                operator_from_row(&row)
            }
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < ALLOCATION_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    pub async fn operators(&self, merchant_id: &MerchantId) -> Result<Vec<Operator>, StoreError> {
        let rows = sqlx::query(
            "SELECT merchant_id, id, name, status, created_at FROM operators \
             WHERE merchant_id = $1 ORDER BY number",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "operator"))?;
        rows.iter().map(operator_from_row).collect()
    }

    /// Adds a shop with the merchant's next free 3-digit suffix.
    pub async fn add_shop(
        &self,
        merchant_id: &MerchantId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Shop, StoreError> {
        self.require_merchant(merchant_id).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = async {
                let last: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) FROM shops WHERE merchant_id = $1",
                )
                .bind(merchant_id.as_str())
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "shop"))?;
                let number = to_u64(last)? + 1;
                let id = ShopId::new(merchant_id, number)
                    .map_err(|_| StoreError::Exhausted("shop number"))?;
                let row = sqlx::query(
                    "INSERT INTO shops (id, merchant_id, number, name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id, name, created_at",
                )
                .bind(id.as_str())
                .bind(merchant_id.as_str())
                .bind(to_i64(number)?)
                .bind(name)
                .bind(to_millis(now))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "shop"))?;
                shop_from_row(&row)
            }
            .await;
            match result {
                Err(e) if e.is_retryable() && attempt < ALLOCATION_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    pub async fn shops(&self, merchant_id: &MerchantId) -> Result<Vec<Shop>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM shops WHERE merchant_id = $1 ORDER BY number",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "shop"))?;
        rows.iter().map(shop_from_row).collect()
    }

    /// Registers a terminal; [`StoreError::Conflict`] if the merchant already has that number,
    /// [`StoreError::NotFound`] if the shop is not the merchant's.
    pub async fn add_terminal(
        &self,
        merchant_id: &MerchantId,
        terminal_no: &TerminalNo,
        shop_id: Option<&ShopId>,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Terminal, StoreError> {
        self.require_merchant(merchant_id).await?;
        if let Some(shop) = shop_id {
            if shop.merchant_id() != *merchant_id {
                return Err(StoreError::NotFound("shop"));
            }
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM shops WHERE id = $1")
                .bind(shop.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "shop"))?;
            if exists.is_none() {
                return Err(StoreError::NotFound("shop"));
            }
        }
        let row = sqlx::query(
            "INSERT INTO terminals (merchant_id, terminal_no, shop_id, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             RETURNING merchant_id, terminal_no, shop_id, name, created_at",
        )
        .bind(merchant_id.as_str())
        .bind(terminal_no.as_str())
        .bind(shop_id.map(ShopId::as_str))
        .bind(name)
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "terminal"))?;
        terminal_from_row(&row)
    }

    pub async fn terminals(&self, merchant_id: &MerchantId) -> Result<Vec<Terminal>, StoreError> {
        let rows = sqlx::query(
            "SELECT merchant_id, terminal_no, shop_id, name, created_at FROM terminals \
             WHERE merchant_id = $1 ORDER BY terminal_no",
        )
        .bind(merchant_id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "terminal"))?;
        rows.iter().map(terminal_from_row).collect()
    }

    async fn require_merchant(&self, id: &MerchantId) -> Result<(), StoreError> {
        match self.merchant(id).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound("merchant")),
        }
    }
}
