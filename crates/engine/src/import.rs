//! Merchants moved from another gateway: they keep the merchant id and the sign key their POS
//! already use, so no POS in any shop needs reconfiguring.
//!
//! An imported merchant is then like one created here: the same first shop (`…001`) and
//! first operator (`0000000001`), its key sealed under the master key. A list is imported
//! whole or not at all.

use std::collections::HashMap;

use qrgate_domain::{
    validate_name, Currency, Merchant, MerchantId, MerchantTimeZone, NameError, Operator, Shop,
};
use qrgate_store::{NewMerchant, StoreError};

use crate::{Engine, EngineError, SignKeyPlain};

/// The most merchants one import takes (one transaction holds them all).
pub const MAX_IMPORT_MERCHANTS: usize = 100_000;

/// A merchant as the provider's previous gateway knew it.
#[derive(Debug, Clone)]
pub struct MerchantImport {
    /// Kept as it is: the POS send it in every request.
    pub id: MerchantId,
    pub name: String,
    pub currency: Currency,
    pub time_zone: MerchantTimeZone,
    /// Kept as it is; checked for the OTTPAY form by [`SignKeyPlain::parse`].
    pub sign_key: SignKeyPlain,
}

/// A merchant just imported. Its key is not repeated: the provider has it already.
#[derive(Debug, Clone)]
pub struct ImportedMerchant {
    pub merchant: Merchant,
    pub shop: Shop,
    pub operator: Operator,
}

/// Why one merchant of an import is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRefusalReason {
    /// More merchants than [`MAX_IMPORT_MERCHANTS`]; given for the first one beyond.
    TooMany,
    Name(NameError),
    /// A merchant with this id exists already.
    Exists,
    /// Another merchant already has this id's number under another prefix (merchant numbers
    /// are unique across prefixes, and new ids are allocated above them).
    NumberTaken {
        by: MerchantId,
    },
    /// The same id is earlier in the list, at this index.
    Repeated {
        first: usize,
    },
    /// The same number under another prefix is earlier in the list, at this index.
    NumberRepeated {
        first: usize,
        other: MerchantId,
    },
}

/// One merchant of an import refused, by its 0-based index in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRefusal {
    pub index: usize,
    pub id: MerchantId,
    pub reason: ImportRefusalReason,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Nothing was imported because of these.
    #[error("{} merchant(s) refused; nothing was imported", .0.len())]
    Refused(Vec<ImportRefusal>),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        ImportError::Engine(e.into())
    }
}

impl Engine {
    /// Every reason the merchants of `list` would be refused, without writing anything:
    /// bad names, ids or numbers already in the database or repeated in the list.
    pub async fn check_merchant_import(
        &self,
        list: &[MerchantImport],
    ) -> Result<Vec<ImportRefusal>, EngineError> {
        let stored: HashMap<u64, MerchantId> = self
            .store
            .merchants()
            .await?
            .into_iter()
            .map(|m| (m.id.number(), m.id))
            .collect();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut refusals = Vec::new();
        for (index, m) in list.iter().enumerate() {
            let mut refuse = |reason| {
                refusals.push(ImportRefusal {
                    index,
                    id: m.id.clone(),
                    reason,
                })
            };
            if index == MAX_IMPORT_MERCHANTS {
                refuse(ImportRefusalReason::TooMany);
            }
            if let Err(e) = validate_name(&m.name) {
                refuse(ImportRefusalReason::Name(e));
            }
            // One reason per clash: with the database first, then with an earlier merchant.
            let number = m.id.number();
            let first = *seen.entry(number).or_insert(index);
            match stored.get(&number) {
                Some(taken) if *taken == m.id => refuse(ImportRefusalReason::Exists),
                Some(taken) => refuse(ImportRefusalReason::NumberTaken { by: taken.clone() }),
                None if first == index => {}
                None if list[first].id == m.id => refuse(ImportRefusalReason::Repeated { first }),
                None => refuse(ImportRefusalReason::NumberRepeated {
                    first,
                    other: list[first].id.clone(),
                }),
            }
        }
        Ok(refusals)
    }

    /// Imports `list` in one transaction: every merchant with its id, its key (sealed under
    /// the master key), a first shop and a first operator, or, when any is refused (see
    /// [`Engine::check_merchant_import`]) or anything fails, none.
    pub async fn import_merchants(
        &self,
        list: &[MerchantImport],
    ) -> Result<Vec<ImportedMerchant>, ImportError> {
        let refusals = self.check_merchant_import(list).await?;
        if !refusals.is_empty() {
            return Err(ImportError::Refused(refusals));
        }
        let mut new = Vec::with_capacity(list.len());
        for m in list {
            let name = validate_name(&m.name)
                .map_err(|e| EngineError::Invalid(format!("merchant name {e}")))?;
            new.push(NewMerchant {
                sign_key_enc: self.master.seal(m.id.as_str(), &m.sign_key),
                id: m.id.clone(),
                name,
                currency: m.currency,
                time_zone: m.time_zone,
                first_shop_name: "Main shop".into(),
                first_operator_name: "Operator 1".into(),
            });
        }
        let created = match self.store.import_merchants(&new, self.now()).await {
            Ok(created) => created,
            // Someone created or imported one of these since the check: say which.
            Err(StoreError::Conflict { .. }) => {
                let refusals = self.check_merchant_import(list).await?;
                if refusals.is_empty() {
                    return Err(EngineError::Busy(
                        "merchants were being created at the same time; nothing was imported: try again"
                            .into(),
                    )
                    .into());
                }
                return Err(ImportError::Refused(refusals));
            }
            Err(e) => return Err(e.into()),
        };
        for c in &created {
            tracing::info!(merchant.id = %c.merchant.id, "merchant imported with its own id and sign key");
        }
        Ok(created
            .into_iter()
            .map(|c| ImportedMerchant {
                merchant: c.merchant,
                shop: c.shop,
                operator: c.operator,
            })
            .collect())
    }
}
