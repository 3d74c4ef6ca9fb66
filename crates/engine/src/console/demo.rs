//! The demo's console users: a provider admin and the demo merchant's owner, with a known
//! password, created on the demo's first start and reused after.

use qrgate_domain::{ConsoleRole, MerchantId};

use super::{Actor, ConsoleError};
use crate::Engine;

/// The demo users' password (the demo is for trying qrgate out, never for production).
pub const DEMO_CONSOLE_PASSWORD: &str = "demo-password-1";

/// The demo's console users, to print.
#[derive(Debug, Clone)]
pub struct DemoConsoleUsers {
    pub provider_admin: String,
    pub merchant_owner: String,
    pub password: &'static str,
    pub merchant_id: MerchantId,
}

impl Engine {
    /// Creates the demo's console users unless they exist: `admin@demo.qrgate` (provider
    /// admin) and `owner@demo.qrgate` (owner of `merchant`), both with
    /// [`DEMO_CONSOLE_PASSWORD`].
    pub async fn ensure_demo_console_users(
        &self,
        merchant: &MerchantId,
    ) -> Result<DemoConsoleUsers, ConsoleError> {
        let admin = "admin@demo.qrgate";
        let owner = "owner@demo.qrgate";
        for (email, role, m) in [
            (admin, ConsoleRole::ProviderAdmin, None),
            (owner, ConsoleRole::MerchantOwner, Some(merchant)),
        ] {
            if self.console_user_by_email(email).await.is_ok() {
                continue;
            }
            let (_, link) = self
                .create_console_user(&Actor::cli(), email, role, m)
                .await?;
            self.set_password_with_link(&link.token, DEMO_CONSOLE_PASSWORD, "cli")
                .await?;
        }
        Ok(DemoConsoleUsers {
            provider_admin: admin.into(),
            merchant_owner: owner.into(),
            password: DEMO_CONSOLE_PASSWORD,
            merchant_id: merchant.clone(),
        })
    }
}
