//! qrgate's web console under `/console` (docs/CONSOLE.md): merchants see their sales, refund,
//! export and follow their notifications; the provider onboards merchants, sets fees and
//! rates, watches the wallets and what needs attention. English and Chinese (Fluent).
//!
//! Server-rendered HTML (maud), no script: every action is a form, every confirmation a page.
//! Handlers call the engine's console use cases and render what they return: no payment rule
//! and no SQL here. The engine checks who may see and do what (a merchant's user asking for
//! another merchant's anything gets 404); every POST carries the session's CSRF token.
//!
//! The routes are declared once in [`routes`], which builds the router and the list the
//! isolation test walks ([`route_table`]), so that a new route cannot escape the test.

mod auth;
mod error;
mod export;
mod forms;
mod i18n;
mod layout;
mod merchant;
mod provider;
mod users;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::http::HeaderValue;
use axum::routing::{get, post};
use axum::Router;
use qrgate_domain::Wallet;
use qrgate_engine::Engine;
use tower_http::set_header::SetResponseHeaderLayer;

pub use i18n::{message_ids, Lang};

/// The console's pages' Content-Security-Policy: its one stylesheet from the gateway, no
/// script at all, no inline style, forms posted to the gateway only, never framed.
pub const PAGE_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Settings of the console.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// The wallets' base URLs in use (sandbox or production), shown on the wallets page.
    pub wallet_base_urls: Vec<(Wallet, String)>,
    /// Mark the session cookie `Secure` (when the gateway is reached over HTTPS).
    pub secure_cookie: bool,
}

/// What every console handler can reach.
#[derive(Clone)]
pub struct ConsoleState {
    pub engine: Engine,
    pub config: Arc<ConsoleConfig>,
}

impl ConsoleState {
    pub fn new(engine: Engine, config: ConsoleConfig) -> ConsoleState {
        ConsoleState {
            engine,
            config: Arc::new(config),
        }
    }
}

/// Who may reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: sign-in, the one-time link, the stylesheet.
    Public,
    /// A signed-in user (possibly still to give the second factor).
    Signed,
    /// A signed-in user, for a merchant named in the path (`{merchant}`).
    Merchant,
    /// A signed-in provider user.
    Provider,
}

/// One route as the isolation test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Builds the router and records each route.
struct Routes {
    router: Router<ConsoleState>,
    table: Vec<RouteInfo>,
}

impl Routes {
    fn get<H, T>(mut self, path: &'static str, access: Access, handler: H) -> Routes
    where
        H: Handler<T, ConsoleState>,
        T: 'static,
    {
        self.table.push(RouteInfo {
            method: "GET",
            path,
            access,
        });
        self.router = self.router.route(path, get(handler));
        self
    }

    fn post<H, T>(mut self, path: &'static str, access: Access, handler: H) -> Routes
    where
        H: Handler<T, ConsoleState>,
        T: 'static,
    {
        self.table.push(RouteInfo {
            method: "POST",
            path,
            access,
        });
        self.router = self.router.route(path, post(handler));
        self
    }
}

/// Every route of the console, declared once.
fn routes() -> Routes {
    use Access::*;
    Routes {
        router: Router::new(),
        table: Vec::new(),
    }
    .get("/console", Signed, auth::home)
    .get("/console/assets/console.css", Public, layout::css)
    .get("/console/sign-in", Public, auth::sign_in_page)
    .post("/console/sign-in", Public, auth::sign_in)
    .get("/console/sign-in/code", Signed, auth::code_page)
    .post("/console/sign-in/code", Signed, auth::code)
    .post("/console/sign-out", Signed, auth::sign_out)
    .get("/console/welcome/{token}", Public, auth::welcome_page)
    .post("/console/welcome/{token}", Public, auth::welcome)
    .get("/console/account", Signed, auth::account)
    .post("/console/account/2fa", Signed, auth::start_totp)
    .post("/console/account/2fa/confirm", Signed, auth::confirm_totp)
    // A merchant's pages (the provider's too, for any merchant).
    .get("/console/m/{merchant}", Merchant, merchant::dashboard)
    .get("/console/m/{merchant}/orders", Merchant, merchant::orders)
    .get(
        "/console/m/{merchant}/orders.csv",
        Merchant,
        export::orders_csv,
    )
    .get(
        "/console/m/{merchant}/refunds.csv",
        Merchant,
        export::refunds_csv,
    )
    .get("/console/m/{merchant}/exports", Merchant, export::page)
    .get(
        "/console/m/{merchant}/orders/{order}",
        Merchant,
        merchant::order,
    )
    .post(
        "/console/m/{merchant}/orders/{order}/refund",
        Merchant,
        merchant::refund_confirm,
    )
    .post(
        "/console/m/{merchant}/orders/{order}/refund/confirmed",
        Merchant,
        merchant::refund,
    )
    .get(
        "/console/m/{merchant}/callbacks",
        Merchant,
        merchant::callbacks,
    )
    .post(
        "/console/m/{merchant}/callbacks/{order}/retry",
        Merchant,
        merchant::retry_callback,
    )
    .get(
        "/console/m/{merchant}/settings",
        Merchant,
        merchant::settings,
    )
    .post(
        "/console/m/{merchant}/settings/shops",
        Merchant,
        merchant::add_shop,
    )
    .post(
        "/console/m/{merchant}/settings/terminals",
        Merchant,
        merchant::add_terminal,
    )
    .post(
        "/console/m/{merchant}/settings/operators",
        Merchant,
        merchant::add_operator,
    )
    .post(
        "/console/m/{merchant}/settings/operators/{operator}/pin",
        Merchant,
        merchant::set_pin,
    )
    .post(
        "/console/m/{merchant}/settings/key",
        Merchant,
        merchant::rotate_key,
    )
    .get(
        "/console/m/{merchant}/users",
        Merchant,
        users::merchant_users,
    )
    .post(
        "/console/m/{merchant}/users",
        Merchant,
        users::invite_merchant_user,
    )
    .post(
        "/console/m/{merchant}/users/{user}/status",
        Merchant,
        users::merchant_user_status,
    )
    .post(
        "/console/m/{merchant}/users/{user}/link",
        Merchant,
        users::merchant_user_link,
    )
    .get("/console/m/{merchant}/audit", Merchant, merchant::audit)
    // The provider's pages.
    .get("/console/provider", Provider, provider::attention)
    .post(
        "/console/provider/ledger-check",
        Provider,
        provider::ledger_check,
    )
    .get("/console/provider/merchants", Provider, provider::merchants)
    .post("/console/provider/merchants", Provider, provider::onboard)
    .post(
        "/console/provider/merchants/{merchant}/status",
        Provider,
        provider::merchant_status,
    )
    .post(
        "/console/provider/merchants/{merchant}/fee",
        Provider,
        provider::merchant_fee,
    )
    .get("/console/provider/rates", Provider, provider::rates)
    .post("/console/provider/rates", Provider, provider::set_rate)
    .get("/console/provider/wallets", Provider, provider::wallets)
    .get("/console/provider/users", Provider, users::provider_users)
    .post(
        "/console/provider/users",
        Provider,
        users::invite_provider_user,
    )
    .post(
        "/console/provider/users/{user}/status",
        Provider,
        users::provider_user_status,
    )
    .post(
        "/console/provider/users/{user}/link",
        Provider,
        users::provider_user_link,
    )
    .post(
        "/console/provider/users/{user}/2fa-reset",
        Provider,
        users::reset_totp,
    )
    .get("/console/provider/audit", Provider, provider::audit)
}

/// The console's router, with its state, to be merged at the gateway's root (every path
/// starts with `/console`). Unknown paths under `/console` get the console's 404 page.
pub fn router(state: ConsoleState) -> Router {
    routes()
        .router
        .route(
            "/console/{*rest}",
            get(error::not_found_page).post(error::not_found_page),
        )
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        ))
        .with_state(state)
}

/// Every route with its method and who may reach it (for the isolation test).
pub fn route_table() -> Vec<RouteInfo> {
    routes().table
}
