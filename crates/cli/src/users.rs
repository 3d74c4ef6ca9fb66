//! `qrgate user`: the web console's users from the command line. The first provider admin
//! is created here; the CLI is also the recovery path (a forgotten password, a lost phone,
//! a user to lock out at once). Every change is in the audit log as done by `cli`.

use std::process::ExitCode;

use clap::Subcommand;
use qrgate_domain::{ConsoleRole, MerchantId, UserStatus};
use qrgate_engine::{Actor, ConsoleUser, Engine, SignInLink};
use serde_json::json;

use crate::commands::{parse_merchant_id, print_json};
use crate::config::Config;
use crate::wiring::open_engine;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a console user; prints a one-time sign-in link (valid 72 hours) that sets the
    /// password. The first provider admin is made this way.
    Add {
        /// provider-admin, provider-support, merchant-owner or merchant-staff.
        #[arg(long, value_parser = parse_role)]
        role: ConsoleRole,
        #[arg(long)]
        email: String,
        /// The merchant of a merchant role, e.g. ON00000001.
        #[arg(long = "merchant", value_parser = parse_merchant_id)]
        merchant_id: Option<MerchantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the console's users (one merchant's with --merchant).
    List {
        #[arg(long = "merchant", value_parser = parse_merchant_id)]
        merchant_id: Option<MerchantId>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a new one-time sign-in link for a user who forgot their password (the old link
    /// stops working; the password stays until the link is used).
    Link {
        #[arg(long)]
        email: String,
    },
    /// Turn off a user's two-factor sign-in (a lost phone): they sign in with the password,
    /// and can set it up again.
    #[command(name = "reset-2fa")]
    Reset2fa {
        #[arg(long)]
        email: String,
    },
    /// Refuse a user's sign-in from now on and end their sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Let a disabled user sign in again.
    Enable {
        #[arg(long)]
        email: String,
    },
}

fn parse_role(s: &str) -> Result<ConsoleRole, String> {
    ConsoleRole::parse(s).ok_or_else(|| {
        format!("{s:?} is not a role: provider-admin, provider-support, merchant-owner or merchant-staff")
    })
}

/// Where the gateway is reached, for the links.
fn base_url(config: &Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen))
        .trim_end_matches('/')
        .to_owned()
}

fn print_link(config: &Config, user: &ConsoleUser, link: &SignInLink) {
    println!("one-time sign-in link for {} ({}):", user.email, user.role);
    println!("  {}{}", base_url(config), link.path());
    println!(
        "  valid until {}; shown only now. Opening it sets the password.",
        link.expires_at.to_rfc3339()
    );
}

async fn user_named(engine: &Engine, email: &str) -> anyhow::Result<ConsoleUser> {
    Ok(engine.console_user_by_email(email).await?)
}

pub async fn run(config: &Config, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let (engine, _) = open_engine(config).await?;
    let cli = Actor::cli();
    match cmd {
        UserCommand::Add {
            role,
            email,
            merchant_id,
            json,
        } => {
            let (user, link) = engine
                .create_console_user(&cli, &email, role, merchant_id.as_ref())
                .await?;
            if json {
                return print_json(&json!({
                    "user_id": user.id,
                    "email": user.email.as_str(),
                    "role": user.role.as_str(),
                    "merchant_id": user.merchant_id.as_ref().map(MerchantId::as_str),
                    "sign_in_link": format!("{}{}", base_url(config), link.path()),
                    "link_expires_at": link.expires_at.to_rfc3339(),
                }));
            }
            print_link(config, &user, &link);
        }
        UserCommand::List { merchant_id, json } => {
            let users = engine.console_users(&cli, merchant_id.as_ref()).await?;
            if json {
                return print_json(
                    &users
                        .iter()
                        .map(|u| {
                            json!({
                                "user_id": u.id,
                                "email": u.email.as_str(),
                                "role": u.role.as_str(),
                                "merchant_id": u.merchant_id.as_ref().map(MerchantId::as_str),
                                "status": u.status.as_str(),
                                "two_factor": u.totp_enabled,
                                "password_set": u.has_password,
                            })
                        })
                        .collect(),
                );
            }
            if users.is_empty() {
                println!("no console users: create the first with `qrgate user add --role provider-admin --email …`");
            }
            for u in users {
                println!(
                    "{:<32}  {:<16}  {:<10}  {:<8}  2fa {}",
                    u.email.as_str(),
                    u.role.as_str(),
                    u.merchant_id.as_ref().map_or("-", MerchantId::as_str),
                    u.status.as_str(),
                    if u.totp_enabled { "on" } else { "off" }
                );
            }
        }
        UserCommand::Link { email } => {
            let user = user_named(&engine, &email).await?;
            let link = engine.new_sign_in_link(&cli, user.id).await?;
            print_link(config, &user, &link);
        }
        UserCommand::Reset2fa { email } => {
            let user = user_named(&engine, &email).await?;
            engine.reset_console_totp(&cli, user.id).await?;
            println!("two-factor sign-in turned off for {}", user.email);
        }
        UserCommand::Disable { email } => {
            let user = user_named(&engine, &email).await?;
            engine
                .set_console_user_status(&cli, user.id, UserStatus::Disabled)
                .await?;
            println!(
                "{} disabled: signed out everywhere, and cannot sign in",
                user.email
            );
        }
        UserCommand::Enable { email } => {
            let user = user_named(&engine, &email).await?;
            engine
                .set_console_user_status(&cli, user.id, UserStatus::Active)
                .await?;
            println!("{} enabled", user.email);
        }
    }
    Ok(ExitCode::SUCCESS)
}
