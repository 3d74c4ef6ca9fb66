//! `qrgate pos`: a POS in the terminal, built on the OTTPAY codec as an integrator would use it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use qrgate_ottpay::{Action, Data, RequestEnvelope, ResponseEnvelope, SignKey};

#[derive(Debug, Args)]
pub struct Connection {
    /// The gateway's OTTPAY endpoint.
    #[arg(
        long,
        env = "QRGATE_POS_ENDPOINT",
        default_value = "http://127.0.0.1:8080/processV2"
    )]
    endpoint: String,
    /// The merchant id the POS calls as.
    #[arg(long = "merchant", env = "QRGATE_POS_MERCHANT_ID")]
    merchant_id: String,
    /// The merchant's sign key.
    #[arg(long, env = "QRGATE_POS_SIGN_KEY", hide_env_values = true)]
    sign_key: String,
    /// The terminal number sent in the envelope.
    #[arg(long, env = "QRGATE_POS_TERMINAL_NO")]
    terminal_no: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PosCommand {
    /// Send one OTTPAY request and print the decrypted, verified answer.
    ///
    /// Exit status: 0 when rsp_code is SUCCESS, 2 for any other rsp_code, 1 when the gateway
    /// cannot be reached or its answer cannot be verified.
    Call {
        /// The action, e.g. EX_RATE_QUERY.
        action: String,
        /// The request data as a JSON object of strings, e.g. '{"fee_type":"CAD"}'.
        #[arg(default_value = "{}")]
        data: String,
        #[command(flatten)]
        connection: Connection,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

pub async fn run(cmd: PosCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PosCommand::Call {
            action,
            data,
            connection,
            timeout,
        } => {
            let Some(action) = Action::parse(&action) else {
                bail!(
                    "unknown action {action:?}: expected one of {}",
                    Action::ALL.map(Action::as_str).join(", ")
                );
            };
            let data: Data = serde_json::from_str(&data).context("data must be a JSON object")?;
            let key = SignKey::new(connection.sign_key.clone());
            let envelope = RequestEnvelope::seal(
                action,
                &connection.merchant_id,
                connection.terminal_no.as_deref(),
                None,
                &data,
                &key,
            );
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(timeout))
                .build()
                .context("cannot build the HTTP client")?;
            let body = http
                .post(&connection.endpoint)
                .header("content-type", "application/json")
                .body(envelope.to_json())
                .send()
                .await
                .with_context(|| format!("cannot reach {}", connection.endpoint))?
                .bytes()
                .await
                .context("the gateway's answer was cut off")?;
            let response = ResponseEnvelope::parse(&body).map_err(|e| {
                anyhow::anyhow!("the gateway's answer is not an OTTPAY envelope: {e}")
            })?;
            println!("rsp_code  {}", response.rsp_code);
            println!("rsp_msg   {}", response.rsp_msg);
            let success = response.rsp_code == "SUCCESS";
            match response.open(&key) {
                Ok(opened) => println!("data      {}", serde_json::to_string_pretty(&opened)?),
                // A refusal for an unknown merchant cannot be sealed with its key.
                Err(e) if !success => {
                    println!("data      (not verifiable with this sign key: {e})")
                }
                Err(e) => bail!("the answer's data does not verify with this sign key: {e}"),
            }
            Ok(if success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
