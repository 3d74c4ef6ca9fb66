//! `POST /notify/{wallet}`: the wallets' asynchronous payment notifications. Verified by the
//! wallet's connector, matched to our order, recorded, and acknowledged in the wallet's own
//! format; anything that does not verify is refused and logged (the wallet will retry a
//! genuine one; a forged one changes nothing).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qrgate_domain::Wallet;
use qrgate_engine::NotificationError;

use crate::AppState;

pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(wallet): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(wallet) = Wallet::parse(&wallet) else {
        return (StatusCode::NOT_FOUND, "unknown wallet").into_response();
    };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match state
        .engine
        .handle_wallet_notification(wallet, content_type, &body)
        .await
    {
        Ok((ack, ack_type)) => {
            tracing::info!(wallet = %wallet, "wallet notification accepted");
            (StatusCode::OK, [(CONTENT_TYPE, ack_type)], ack).into_response()
        }
        Err(NotificationError::WalletNotEnabled(_)) => {
            (StatusCode::NOT_FOUND, "wallet not enabled").into_response()
        }
        Err(NotificationError::Engine(e)) => {
            // Our trouble: the wallet should try again later.
            tracing::error!(wallet = %wallet, error = %e, "cannot record a wallet notification");
            (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
        }
        Err(e) => {
            tracing::warn!(wallet = %wallet, error = %e, "wallet notification refused");
            (StatusCode::BAD_REQUEST, "rejected").into_response()
        }
    }
}
