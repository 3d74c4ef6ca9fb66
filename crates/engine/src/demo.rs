//! The demo merchant that `qrgate serve --demo` creates on first start and reuses after.

use qrgate_domain::{Currency, FxRate, Merchant, MerchantId, OperatorId};

use crate::{Engine, EngineError, MerchantRequest, SignKeyPlain};

const DEMO_MERCHANT_KEY: &str = "demo_merchant_id";
/// The till PIN the demo gives its operator, unless the operator has one already.
pub const DEMO_TILL_PIN: &str = "123456";
/// A plausible CAD→CNY rate, set only when no CAD rate exists yet.
const DEMO_CAD_RATE: &str = "5.1234";

/// The demo merchant and what a person needs to call the gateway as it.
#[derive(Debug, Clone)]
pub struct DemoMerchant {
    pub merchant: Merchant,
    pub sign_key: SignKeyPlain,
    pub operator_id: OperatorId,
    /// Whether this start created it.
    pub created: bool,
    /// The operator's till PIN when it is still the demo's ([`DEMO_TILL_PIN`]); `None` once
    /// someone changed it with `qrgate operator set-pin`.
    pub till_pin: Option<&'static str>,
}

impl Engine {
    /// Returns the demo merchant, creating it (and a CAD rate, if none is set) on first use,
    /// and gives its operator the till PIN [`DEMO_TILL_PIN`] if it has none.
    pub async fn ensure_demo_merchant(&self) -> Result<DemoMerchant, EngineError> {
        let mut demo = self.demo_merchant().await?;
        let has_pin = self
            .store
            .operator_pin(&demo.merchant.id, &demo.operator_id)
            .await?
            .is_some_and(|o| o.pin_hash.is_some());
        if !has_pin {
            self.set_operator_pin(&demo.merchant.id, &demo.operator_id, DEMO_TILL_PIN)
                .await?;
            // The demo has one operator: a supervisor, so that refunds can be tried (they
            // approve their own with their PIN).
            self.set_operator_role(
                &demo.merchant.id,
                &demo.operator_id,
                qrgate_domain::OperatorRole::Supervisor,
            )
            .await?;
        }
        demo.till_pin = self
            .operator_pin_is(&demo.merchant.id, &demo.operator_id, DEMO_TILL_PIN)
            .await?
            .then_some(DEMO_TILL_PIN);
        Ok(demo)
    }

    async fn demo_merchant(&self) -> Result<DemoMerchant, EngineError> {
        if self.store.fx_rate(Currency::Cad).await?.is_none() {
            let rate: FxRate =
                DEMO_CAD_RATE
                    .parse()
                    .map_err(|e: qrgate_domain::FxRateParseError| {
                        EngineError::Invalid(e.to_string())
                    })?;
            self.set_fx_rate(Currency::Cad, rate).await?;
        }
        if let Some(id) = self.store.meta(DEMO_MERCHANT_KEY).await? {
            let id = MerchantId::parse(&id).map_err(|e| EngineError::Invalid(e.to_string()))?;
            let merchant = self.merchant(&id).await?;
            let operator_id = self
                .store
                .operators(&id)
                .await?
                .into_iter()
                .next()
                .map(|o| o.id)
                .ok_or(EngineError::NotFound("demo operator"))?;
            let sign_key = self.current_sign_key(&id).await?;
            return Ok(DemoMerchant {
                merchant,
                sign_key,
                operator_id,
                created: false,
                till_pin: None,
            });
        }
        let created = self
            .create_merchant(&MerchantRequest {
                name: "qrgate demo café".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().map_err(
                    |e: qrgate_domain::TimeZoneParseError| EngineError::Invalid(e.to_string()),
                )?,
                id_prefix: "ON".into(),
            })
            .await?;
        let winner = self
            .store
            .meta_insert_if_absent(DEMO_MERCHANT_KEY, created.merchant.id.as_str(), self.now())
            .await?;
        if winner != created.merchant.id.as_str() {
            // Another node created the demo merchant at the same moment: use theirs, and
            // disable ours so it never takes payments.
            self.set_merchant_status(
                &created.merchant.id,
                qrgate_domain::MerchantStatus::Disabled,
            )
            .await?;
            let mut theirs = Box::pin(self.demo_merchant()).await?;
            theirs.created = false;
            return Ok(theirs);
        }
        Ok(DemoMerchant {
            merchant: created.merchant,
            sign_key: created.sign_key,
            operator_id: created.operator.id,
            created: true,
            till_pin: None,
        })
    }
}
