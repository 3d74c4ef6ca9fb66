//! The web console's people: their roles, what each role may do, and their email addresses.

use std::fmt;

use crate::MerchantId;

/// A console user's role. Provider roles see every merchant; merchant roles belong to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsoleRole {
    /// Runs the gateway: onboards merchants, sets fees and rates, manages every user.
    ProviderAdmin,
    /// Sees everything the provider admin sees, and changes nothing.
    ProviderSupport,
    /// A merchant's owner: its sales, refunds, exports, callbacks, settings, keys and users.
    MerchantOwner,
    /// A merchant's staff: its sales and refunds; no keys, no settings, no users.
    MerchantStaff,
}

/// Something a console user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See a merchant's sales, orders, refunds, callbacks and exports.
    ViewSales,
    /// Refund a merchant's order.
    Refund,
    /// Send a merchant's notification again.
    RetryCallback,
    /// Change a merchant's shops, terminals, operators and their PINs; rotate its sign key.
    ManageSettings,
    /// Invite and disable a merchant's users.
    ManageMerchantUsers,
    /// See the audit log of a merchant.
    ViewAudit,
    /// See the provider's pages (every merchant, rates, wallets, attention, users, audit).
    ViewProvider,
    /// Onboard, disable and enable merchants; set fees and rates; manage every user.
    ManageProvider,
}

impl ConsoleRole {
    pub const ALL: [ConsoleRole; 4] = [
        ConsoleRole::ProviderAdmin,
        ConsoleRole::ProviderSupport,
        ConsoleRole::MerchantOwner,
        ConsoleRole::MerchantStaff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::ProviderAdmin => "provider_admin",
            ConsoleRole::ProviderSupport => "provider_support",
            ConsoleRole::MerchantOwner => "merchant_owner",
            ConsoleRole::MerchantStaff => "merchant_staff",
        }
    }

    /// Parses `provider_admin` or `provider-admin` (the CLI's spelling).
    pub fn parse(s: &str) -> Option<ConsoleRole> {
        let s = s.replace('-', "_");
        ConsoleRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the role is the provider's (no merchant of its own).
    pub fn is_provider(self) -> bool {
        matches!(
            self,
            ConsoleRole::ProviderAdmin | ConsoleRole::ProviderSupport
        )
    }

    /// Whether the role may do `what` (on the merchant it may see).
    pub fn may(self, what: Permission) -> bool {
        use Permission::*;
        match self {
            ConsoleRole::ProviderAdmin => matches!(
                what,
                ViewSales | RetryCallback | ViewAudit | ViewProvider | ManageProvider
            ),
            ConsoleRole::ProviderSupport => matches!(what, ViewSales | ViewAudit | ViewProvider),
            ConsoleRole::MerchantOwner => matches!(
                what,
                ViewSales
                    | Refund
                    | RetryCallback
                    | ManageSettings
                    | ManageMerchantUsers
                    | ViewAudit
            ),
            ConsoleRole::MerchantStaff => matches!(what, ViewSales | Refund | RetryCallback),
        }
    }
}

impl fmt::Display for ConsoleRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose data a user sees: every merchant's, or one merchant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Provider,
    Merchant(MerchantId),
}

impl Scope {
    /// Whether data of `merchant` is visible in this scope.
    pub fn sees(&self, merchant: &MerchantId) -> bool {
        match self {
            Scope::Provider => true,
            Scope::Merchant(own) => own == merchant,
        }
    }
}

/// Whether a console user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        match s {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            _ => None,
        }
    }
}

/// An email address as a console user's name: trimmed and lower-cased, 3 to 254 characters,
/// one `@` with something on each side, no spaces or control characters. Nothing is sent to
/// it; it only has to be the one the person knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an email address is 3 to 254 characters with one @ and no spaces")]
pub struct EmailError;

impl Email {
    pub fn parse(s: &str) -> Result<Email, EmailError> {
        let s = s.trim().to_lowercase();
        let ok = (3..=254).contains(&s.chars().count())
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if ok {
            Ok(Email(s))
        } else {
            Err(EmailError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_in_both_spellings() {
        for r in ConsoleRole::ALL {
            assert_eq!(ConsoleRole::parse(r.as_str()), Some(r));
            assert_eq!(ConsoleRole::parse(&r.as_str().replace('_', "-")), Some(r));
        }
        assert_eq!(ConsoleRole::parse("admin"), None);
    }

    #[test]
    fn staff_may_sell_and_refund_but_not_touch_keys_or_users() {
        let staff = ConsoleRole::MerchantStaff;
        assert!(staff.may(Permission::Refund));
        assert!(!staff.may(Permission::ManageSettings));
        assert!(!staff.may(Permission::ManageMerchantUsers));
        assert!(!staff.may(Permission::ViewProvider));
        assert!(!ConsoleRole::ProviderSupport.may(Permission::ManageProvider));
        assert!(!ConsoleRole::ProviderSupport.may(Permission::Refund));
        assert!(ConsoleRole::ProviderAdmin.may(Permission::ManageProvider));
    }

    #[test]
    fn a_merchant_scope_sees_only_its_merchant() {
        let a = MerchantId::parse("ON00000001").unwrap();
        let b = MerchantId::parse("ON00000002").unwrap();
        assert!(Scope::Merchant(a.clone()).sees(&a));
        assert!(!Scope::Merchant(a.clone()).sees(&b));
        assert!(Scope::Provider.sees(&b));
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            Email::parse(" Li@Example.COM ").unwrap().as_str(),
            "li@example.com"
        );
        for bad in [
            "",
            "a",
            "@b",
            "a@",
            "a b@c",
            "a@b@c",
            &format!("{}@b", "a".repeat(260)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
