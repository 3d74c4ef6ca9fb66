//! The console's page shell: a skip link, the header (who is signed in, the language switch,
//! sign-out), the navigation of the provider's and the merchant's pages, and the stylesheet.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use qrgate_domain::{Merchant, Permission};

use crate::auth::Ctx;
use crate::i18n::{Lang, Locale};

pub const CSS: &str = include_str!("console.css");

/// Which part of the console a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    None,
    Dashboard,
    Orders,
    Exports,
    Callbacks,
    Settings,
    Users,
    Audit,
    Attention,
    Merchants,
    Rates,
    Wallets,
    ProviderUsers,
    ProviderAudit,
    Account,
}

/// One page of the console.
pub struct Page<'a> {
    pub locale: Locale,
    pub title: String,
    pub ctx: Option<&'a Ctx>,
    /// The merchant whose pages these are, for the merchant's navigation.
    pub merchant: Option<&'a Merchant>,
    pub section: Section,
    pub status: StatusCode,
    pub cookies: Vec<String>,
}

impl<'a> Page<'a> {
    pub fn new(locale: Locale, title: impl Into<String>) -> Page<'a> {
        Page {
            locale,
            title: title.into(),
            ctx: None,
            merchant: None,
            section: Section::None,
            status: StatusCode::OK,
            cookies: Vec::new(),
        }
    }

    pub fn of(ctx: &'a Ctx, title: impl Into<String>, section: Section) -> Page<'a> {
        Page {
            ctx: Some(ctx),
            section,
            ..Page::new(ctx.locale, title)
        }
    }

    pub fn merchant(mut self, merchant: &'a Merchant) -> Self {
        self.merchant = Some(merchant);
        self
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn nav_link(&self, href: &str, section: Section, id: &str, label: String) -> Markup {
        let current = self.section == section;
        html! {
            a id=(id) href=(href) aria-current=[current.then_some("page")] { (label) }
        }
    }

    fn nav(&self, l: Lang) -> Markup {
        let Some(ctx) = self.ctx else {
            return html! {};
        };
        if ctx.session.pending_totp {
            return html! {};
        }
        let role = ctx.session.user.role;
        html! {
            @if role.may(Permission::ViewProvider) {
                nav.provider aria-label=(l.t("nav-provider")) {
                    (self.nav_link("/console/provider", Section::Attention, "nav-attention", l.t("nav-attention")))
                    (self.nav_link("/console/provider/merchants", Section::Merchants, "nav-merchants", l.t("nav-merchants")))
                    (self.nav_link("/console/provider/rates", Section::Rates, "nav-rates", l.t("nav-rates")))
                    (self.nav_link("/console/provider/wallets", Section::Wallets, "nav-wallets", l.t("nav-wallets")))
                    (self.nav_link("/console/provider/users", Section::ProviderUsers, "nav-provider-users", l.t("nav-users")))
                    (self.nav_link("/console/provider/audit", Section::ProviderAudit, "nav-provider-audit", l.t("nav-audit")))
                }
            }
            @if let Some(m) = self.merchant {
                @let base = format!("/console/m/{}", m.id);
                nav.merchant aria-label=(l.ta("nav-merchant", &[("name", m.name.clone())])) {
                    @if role.is_provider() { span.merchant-name { (m.name) " · " (m.id) } }
                    (self.nav_link(&base, Section::Dashboard, "nav-dashboard", l.t("nav-dashboard")))
                    (self.nav_link(&format!("{base}/orders"), Section::Orders, "nav-orders", l.t("nav-orders")))
                    (self.nav_link(&format!("{base}/exports"), Section::Exports, "nav-exports", l.t("nav-exports")))
                    (self.nav_link(&format!("{base}/callbacks"), Section::Callbacks, "nav-callbacks", l.t("nav-callbacks")))
                    (self.nav_link(&format!("{base}/settings"), Section::Settings, "nav-settings", l.t("nav-settings")))
                    @if role.may(Permission::ManageMerchantUsers) || role.is_provider() {
                        (self.nav_link(&format!("{base}/users"), Section::Users, "nav-users", l.t("nav-users")))
                    }
                    @if role.may(Permission::ViewAudit) {
                        (self.nav_link(&format!("{base}/audit"), Section::Audit, "nav-audit", l.t("nav-audit")))
                    }
                }
            }
        }
    }

    pub fn render(self, uri: &Uri, body: Markup) -> Response {
        let l = self.locale.lang;
        let other = l.other();
        let markup = html! {
            (DOCTYPE)
            html lang=(l.html_lang()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · " (l.t("console-name")) }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body {
                    a.skip href="#main" { (l.t("skip-to-content")) }
                    header.bar {
                        a.brand href="/console" { (l.t("console-name")) }
                        @if let Some(ctx) = self.ctx {
                            span.who #who {
                                (ctx.session.user.email) " · " (role_name(l, ctx.session.user.role))
                            }
                        }
                        a.lang href=(lang_link(uri, other)) lang=(other.html_lang())
                            hreflang=(other.html_lang()) { (other.own_name()) }
                        @if let Some(ctx) = self.ctx {
                            @if !ctx.session.pending_totp {
                                a #nav-account href="/console/account" { (l.t("nav-account")) }
                            }
                            form.inline method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(ctx.session.csrf_token);
                                button.link #sign-out type="submit" { (l.t("sign-out")) }
                            }
                        }
                    }
                    (self.nav(l))
                    main #main tabindex="-1" { (body) }
                }
            }
        };
        let mut response = (self.status, markup).into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for cookie in self.locale.set_cookie().into_iter().chain(self.cookies) {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
        response
    }
}

pub fn role_name(l: Lang, role: qrgate_domain::ConsoleRole) -> String {
    l.t(match role {
        qrgate_domain::ConsoleRole::ProviderAdmin => "role-provider-admin",
        qrgate_domain::ConsoleRole::ProviderSupport => "role-provider-support",
        qrgate_domain::ConsoleRole::MerchantOwner => "role-merchant-owner",
        qrgate_domain::ConsoleRole::MerchantStaff => "role-merchant-staff",
    })
}

/// This page in the other language: the same path and query with `lang` replaced.
pub fn lang_link(uri: &Uri, lang: Lang) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            if k != "lang" {
                query.append_pair(&k, &v);
            }
        }
    }
    query.append_pair("lang", lang.code());
    format!("{}?{}", uri.path(), query.finish())
}

/// A message the person must notice, announced by screen readers.
pub fn notice(kind: &str, id: &str, title: &str, detail: &str) -> Markup {
    html! {
        div class={ "notice " (kind) } id=(id) role=(if kind == "error" { "alert" } else { "status" }) {
            p.title { (title) }
            @if !detail.is_empty() { p { (detail) } }
        }
    }
}

/// The CSRF field every form carries.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.session.csrf_token); }
}

pub async fn css() -> Response {
    let mut response = CSS.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    response
}

#[cfg(test)]
mod tests {
    /// WCAG 2 contrast ratio of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        fn luminance(hex: &str) -> f64 {
            let channel = |i: usize| {
                let v = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
                if v <= 0.039_28 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5)
        }
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn every_text_colour_pair_of_the_stylesheet_is_readable() {
        // (text, background) as in console.css.
        for (text, background) in [
            ("#111111", "#ffffff"),
            ("#ffffff", "#1f2937"),
            ("#ffffff", "#0a4fb4"),
            ("#0a4fb4", "#ffffff"),
            ("#111111", "#f3f4f6"),
            ("#555555", "#ffffff"),
            ("#5c0f0a", "#fdecec"),
            ("#0b2a5c", "#eef3fb"),
            ("#0d3d18", "#e8f6ec"),
            ("#ffffff", "#b3261e"),
            ("#e5e7eb", "#1f2937"),
        ] {
            assert!(
                contrast(text, background) >= 4.5,
                "{text} on {background}: {:.2}",
                contrast(text, background)
            );
        }
    }
}
