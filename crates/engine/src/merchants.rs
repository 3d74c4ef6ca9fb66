//! Onboarding merchants and their people, and recognising a merchant's POS.

use chrono::{DateTime, Duration, Utc};
use qrgate_domain::{
    validate_name, Currency, Merchant, MerchantId, MerchantStatus, MerchantTimeZone, Operator,
    Shop, ShopId, Terminal, TerminalNo,
};
use qrgate_store::{NewMerchant, StoreError, ALLOCATION_ATTEMPTS};

use crate::{Engine, EngineError, MasterKeyError, SignKeyPlain};

/// The longest grace period a rotated key may keep working.
pub const MAX_KEY_GRACE: Duration = Duration::days(30);

/// What the provider gives to onboard a merchant.
#[derive(Debug, Clone)]
pub struct MerchantRequest {
    pub name: String,
    pub currency: Currency,
    pub time_zone: MerchantTimeZone,
    /// The two letters that start the merchant id, usually the province (`ON`, `QC`).
    pub id_prefix: String,
}

/// A merchant just onboarded. `sign_key` is shown to the provider once and never again.
#[derive(Debug, Clone)]
pub struct CreatedMerchant {
    pub merchant: Merchant,
    pub sign_key: SignKeyPlain,
    pub shop: Shop,
    pub operator: Operator,
}

/// The result of a key rotation: the new key, shown once.
#[derive(Debug, Clone)]
pub struct RotatedKey {
    pub merchant_id: MerchantId,
    pub sign_key: SignKeyPlain,
    pub version: i64,
    /// Until when the previous key is still accepted, if a grace period was given.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// A merchant recognised from a POS request, with the keys its messages may be sealed with:
/// the current key first, then the previous one while its grace period lasts.
#[derive(Debug, Clone)]
pub struct PosCredentials {
    pub merchant: Merchant,
    pub keys: Vec<SignKeyPlain>,
}

/// Why a POS request's merchant is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PosAuthError {
    #[error("unknown merchant_id")]
    UnknownMerchant,
    #[error("merchant is disabled")]
    Disabled,
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn name(raw: &str, what: &str) -> Result<String, EngineError> {
    validate_name(raw).map_err(|e| EngineError::Invalid(format!("{what} {e}")))
}

impl Engine {
    /// Onboards a merchant: a new id, a fresh sign key (encrypted at rest), a first shop and a
    /// first operator, in one transaction.
    pub async fn create_merchant(
        &self,
        req: &MerchantRequest,
    ) -> Result<CreatedMerchant, EngineError> {
        let merchant_name = name(&req.name, "merchant")?;
        MerchantId::from_parts(&req.id_prefix, 0)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let sign_key = SignKeyPlain::generate();
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            // The key is sealed for the id it will be stored under, so the row is complete
            // from its first write.
            let id = self.store.next_merchant_id(&req.id_prefix).await?;
            let new = NewMerchant {
                sign_key_enc: self.master.seal(id.as_str(), &sign_key),
                id,
                name: merchant_name.clone(),
                currency: req.currency,
                time_zone: req.time_zone,
                first_shop_name: "Main shop".into(),
                first_operator_name: "Operator 1".into(),
            };
            match self.store.create_merchant(&new, self.now()).await {
                Err(StoreError::Conflict { .. }) if attempt < ALLOCATION_ATTEMPTS => continue,
                Err(StoreError::Conflict { .. }) => {
                    return Err(EngineError::Busy(
                        "could not allocate a merchant id: too many merchants are being created at once; try again".into(),
                    ))
                }
                other => break other?,
            }
        };
        let id = created.merchant.id.clone();
        tracing::info!(merchant.id = %id, "merchant created");
        Ok(CreatedMerchant {
            merchant: created.merchant,
            sign_key,
            shop: created.shop,
            operator: created.operator,
        })
    }

    pub async fn merchants(&self) -> Result<Vec<Merchant>, EngineError> {
        Ok(self.store.merchants().await?)
    }

    pub async fn merchant(&self, id: &MerchantId) -> Result<Merchant, EngineError> {
        self.store
            .merchant(id)
            .await?
            .ok_or(EngineError::NotFound("merchant"))
    }

    pub async fn set_merchant_status(
        &self,
        id: &MerchantId,
        status: MerchantStatus,
    ) -> Result<Merchant, EngineError> {
        let merchant = self
            .store
            .set_merchant_status(id, status, self.now())
            .await?;
        tracing::info!(merchant.id = %id, merchant.status = %status, "merchant status changed");
        Ok(merchant)
    }

    /// Sets the provider's fee on the merchant's payments from now on; payments already
    /// posted keep theirs, and their refunds give back a share of the fee they paid.
    pub async fn set_merchant_fee_rate(
        &self,
        id: &MerchantId,
        rate: qrgate_domain::FeeRate,
    ) -> Result<Merchant, EngineError> {
        let merchant = self
            .store
            .set_merchant_fee_rate(id, rate, self.now())
            .await?;
        tracing::info!(merchant.id = %id, merchant.fee = %rate, "merchant fee rate changed");
        Ok(merchant)
    }

    /// Gives the merchant a new sign key. With `grace`, the old key keeps working that long so
    /// the POS can be updated without downtime; without, it stops at once (for a leaked key).
    pub async fn rotate_sign_key(
        &self,
        id: &MerchantId,
        grace: Option<Duration>,
    ) -> Result<RotatedKey, EngineError> {
        if let Some(g) = grace {
            if g <= Duration::zero() || g > MAX_KEY_GRACE {
                return Err(EngineError::Invalid(
                    "the grace period must be positive and at most 30 days".into(),
                ));
            }
        }
        self.merchant(id).await?;
        let sign_key = SignKeyPlain::generate();
        let sealed = self.master.seal(id.as_str(), &sign_key);
        let now = self.now();
        let until = grace.map(|g| now + g);
        let version = self.store.replace_sign_key(id, &sealed, until, now).await?;
        tracing::info!(merchant.id = %id, key.version = version, "sign key rotated");
        Ok(RotatedKey {
            merchant_id: id.clone(),
            sign_key,
            version,
            previous_valid_until: until,
        })
    }

    /// The merchant's current sign key in clear (for the demo's start-up message).
    pub async fn current_sign_key(&self, id: &MerchantId) -> Result<SignKeyPlain, EngineError> {
        let keys = self
            .store
            .merchant_keys(id)
            .await?
            .ok_or(EngineError::NotFound("merchant"))?;
        Ok(self.master.open(id.as_str(), &keys.current_enc)?)
    }

    /// Recognises the merchant a POS request names and returns the keys its data may be
    /// sealed with. Unknown and disabled merchants are refused.
    pub async fn pos_credentials(&self, merchant_id: &str) -> Result<PosCredentials, PosAuthError> {
        let id = MerchantId::parse(merchant_id).map_err(|_| PosAuthError::UnknownMerchant)?;
        let keys = self
            .store
            .merchant_keys(&id)
            .await?
            .ok_or(PosAuthError::UnknownMerchant)?;
        if keys.merchant.status != MerchantStatus::Active {
            return Err(PosAuthError::Disabled);
        }
        let mut plain = vec![self.master.open(id.as_str(), &keys.current_enc)?];
        if let Some((enc, until)) = &keys.previous {
            if self.now() < *until {
                plain.push(self.master.open(id.as_str(), enc)?);
            }
        }
        Ok(PosCredentials {
            merchant: keys.merchant,
            keys: plain,
        })
    }

    pub async fn add_operator(
        &self,
        id: &MerchantId,
        raw_name: &str,
    ) -> Result<Operator, EngineError> {
        let operator = self
            .store
            .add_operator(id, &name(raw_name, "operator")?, self.now())
            .await?;
        tracing::info!(merchant.id = %id, operator.id = %operator.id, "operator added");
        Ok(operator)
    }

    pub async fn operators(&self, id: &MerchantId) -> Result<Vec<Operator>, EngineError> {
        self.merchant(id).await?;
        Ok(self.store.operators(id).await?)
    }

    pub async fn add_shop(&self, id: &MerchantId, raw_name: &str) -> Result<Shop, EngineError> {
        let shop = self
            .store
            .add_shop(id, &name(raw_name, "shop")?, self.now())
            .await?;
        tracing::info!(merchant.id = %id, shop.id = %shop.id, "shop added");
        Ok(shop)
    }

    pub async fn shops(&self, id: &MerchantId) -> Result<Vec<Shop>, EngineError> {
        self.merchant(id).await?;
        Ok(self.store.shops(id).await?)
    }

    pub async fn add_terminal(
        &self,
        id: &MerchantId,
        terminal_no: &TerminalNo,
        shop: Option<&ShopId>,
        raw_name: Option<&str>,
    ) -> Result<Terminal, EngineError> {
        let display = match raw_name {
            Some(n) => name(n, "terminal")?,
            None => terminal_no.as_str().to_owned(),
        };
        let terminal = self
            .store
            .add_terminal(id, terminal_no, shop, &display, self.now())
            .await?;
        tracing::info!(merchant.id = %id, terminal.no = %terminal_no, "terminal added");
        Ok(terminal)
    }

    pub async fn terminals(&self, id: &MerchantId) -> Result<Vec<Terminal>, EngineError> {
        self.merchant(id).await?;
        Ok(self.store.terminals(id).await?)
    }
}
