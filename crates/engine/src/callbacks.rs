//! Notifications to merchants (OTTPAY's "call-back", `ottpay.md` §6 and §13): queued in the
//! same transaction as the order becoming paid (the store's outbox), delivered at least once
//! with a bounded number of deliveries at a time, retried with backoff for a day, every attempt
//! recorded. Any 2xx whose body is not `fail` counts as delivered (§13.4).

use std::net::IpAddr;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use qrgate_store::{Callback, CallbackAttempt, CallbackStatus};

use crate::{Engine, EngineError};

/// Gaps between deliveries: 15 s, 1 min, 5 min, 15 min, then hourly (`ottpay.md` §11.9),
/// until [`GIVE_UP_AFTER`].
const SCHEDULE: [i64; 4] = [15, 60, 300, 900];
const HOURLY: i64 = 3600;
/// A notification not delivered within this long of the payment is given up (`dead`).
const GIVE_UP_AFTER: Duration = Duration::hours(25);
/// The claim on a notification: longer than a delivery can take.
pub(crate) const CLAIM_LEASE: Duration = Duration::seconds(60);

/// The body of a merchant notification, in the protocol the merchant speaks (the OTTPAY
/// envelope, sealed with the merchant's key, lives in `qrgate-http`: the engine knows no
/// wire format).
pub trait NotificationFormat: Send + Sync {
    fn body(
        &self,
        order: &qrgate_domain::Order,
        merchant: &qrgate_domain::Merchant,
        sign_key: &str,
    ) -> String;
}

/// How merchant notifications are sent.
#[derive(Clone)]
pub struct CallbackSettings {
    /// Deliver to loopback and private addresses too (the demo and tests). Off in production,
    /// so a merchant's `call_back_url` cannot reach the gateway's own network.
    pub allow_private: bool,
    pub timeout: StdDuration,
    pub format: Option<std::sync::Arc<dyn NotificationFormat>>,
}

impl std::fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            allow_private: false,
            timeout: StdDuration::from_secs(10),
            format: None,
        }
    }
}

/// Whether an address is one a merchant's URL must not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Checks a `call_back_url` when an order is created: http(s) with a host, and, unless private
/// networks are allowed, not an address literal of a private network.
pub fn check_callback_url(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url)
        .map_err(|_| "invalid call_back_url: expected an http(s) URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || url.len() > 512 {
        return Err("invalid call_back_url: expected an http(s) URL".into());
    }
    if !allow_private {
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(is_private) || parsed.host_str() == Some("localhost") {
            return Err(
                "invalid call_back_url: private and loopback addresses are not allowed".into(),
            );
        }
    }
    Ok(())
}

fn next_attempt(
    callback: &Callback,
    now: chrono::DateTime<chrono::Utc>,
) -> (CallbackStatus, Option<chrono::DateTime<chrono::Utc>>) {
    let done = usize::try_from(callback.attempts).unwrap_or(usize::MAX);
    let gap = SCHEDULE.get(done).copied().unwrap_or(HOURLY);
    let next = now + Duration::seconds(gap);
    if next - callback.created_at > GIVE_UP_AFTER {
        (CallbackStatus::Dead, None)
    } else {
        (CallbackStatus::Pending, Some(next))
    }
}

fn excerpt(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(120).collect()
}

impl Engine {
    /// One round of notification delivery, to drain it in tests and tools: claims up to
    /// `limit` due notifications and delivers them concurrently, each bounded by the timeout,
    /// and waits for them. Returns how many were attempted. `serve` runs
    /// [`Engine::run_notification_loop`] instead, which never waits for a round.
    pub async fn deliver_due_callbacks(
        &self,
        worker: &str,
        limit: i64,
    ) -> Result<usize, EngineError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        if limit == 0 {
            return Ok(0);
        }
        let mut in_flight = crate::loops::InFlight::new(crate::LoopBounds {
            per_lane: limit,
            total: limit,
        });
        let started = self.start_due_callbacks(worker, &mut in_flight).await;
        in_flight.all_finished().await;
        started
    }

    pub(crate) async fn deliver(&self, callback: Callback) -> Result<(), EngineError> {
        let started = Instant::now();
        let result = self.send_callback(&callback).await;
        let now = self.now();
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (attempt, delivered) = match result {
            Ok((status, body)) => {
                let ok = (200..300).contains(&status) && !body.trim().eq_ignore_ascii_case("fail");
                (
                    CallbackAttempt {
                        at: now,
                        http_status: Some(i64::from(status)),
                        latency_ms,
                        excerpt: excerpt(&body),
                    },
                    ok,
                )
            }
            Err(e) => (
                CallbackAttempt {
                    at: now,
                    http_status: None,
                    latency_ms,
                    excerpt: excerpt(&e),
                },
                false,
            ),
        };
        let (status, next) = if delivered {
            (CallbackStatus::Delivered, None)
        } else {
            next_attempt(&callback, now)
        };
        if status == CallbackStatus::Dead {
            tracing::error!(order.key = %callback.order_key, merchant.id = %callback.merchant_id, "merchant notification given up after a day of retries");
        }
        self.store
            .record_callback_attempt(&callback.order_key, &attempt, status, next)
            .await?;
        Ok(())
    }

    /// Builds the §6 envelope, sealed with the merchant's current key, and posts it.
    async fn send_callback(&self, callback: &Callback) -> Result<(u16, String), String> {
        let order = self
            .store
            .order(&callback.order_key)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("order not found")?;
        let merchant = self
            .merchant(&order.merchant_id)
            .await
            .map_err(|e| e.to_string())?;
        let key = self
            .current_sign_key(&order.merchant_id)
            .await
            .map_err(|e| e.to_string())?;
        let format = self
            .callback_settings
            .format
            .clone()
            .ok_or("no notification format configured")?;
        let body = format.body(&order, &merchant, key.expose());
        let parsed = url::Url::parse(&callback.url).map_err(|_| "invalid URL".to_owned())?;
        if !self.callback_settings.allow_private {
            let host = parsed.host_str().unwrap_or_default().to_owned();
            let port = parsed.port_or_known_default().unwrap_or(80);
            let addrs = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            if addrs.into_iter().any(|a| is_private(a.ip())) {
                return Err(format!("refused: {host} resolves to a private address"));
            }
        }
        let response = self
            .http
            .post(callback.url.as_str())
            .timeout(self.callback_settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    }

    /// Notifications of a merchant (or of all), newest first.
    pub async fn callbacks(
        &self,
        merchant: Option<&qrgate_domain::MerchantId>,
        limit: i64,
    ) -> Result<Vec<Callback>, EngineError> {
        Ok(self.store.callbacks(merchant, limit).await?)
    }

    pub async fn callback_attempts(
        &self,
        order_key: &str,
    ) -> Result<Vec<CallbackAttempt>, EngineError> {
        Ok(self.store.callback_attempts(order_key).await?)
    }

    /// Sends the notification of a merchant's order again, from now.
    pub async fn retry_callback(
        &self,
        merchant: &qrgate_domain::Merchant,
        order_id: &qrgate_domain::MerchantOrderId,
    ) -> Result<(), EngineError> {
        let order = self
            .find_order(merchant, order_id)
            .await?
            .ok_or(EngineError::NotFound("order"))?;
        if self.store.retry_callback(&order.key, self.now()).await? {
            Ok(())
        } else {
            Err(EngineError::NotFound("notification for that order"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/n",
            "http://10.1.2.3/n",
            "http://192.168.1.20:8080/n",
            "http://172.16.0.1/n",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/n",
            "http://[fd00::1]/n",
            "http://localhost/n",
        ] {
            assert!(check_callback_url(url, false).is_err(), "{url}");
            assert!(check_callback_url(url, true).is_ok(), "{url}");
        }
        assert!(check_callback_url("https://merchant.example/notify?code=x", false).is_ok());
        assert!(check_callback_url("ftp://merchant.example/", true).is_err());
        assert!(check_callback_url("not a url", true).is_err());
    }

    #[test]
    fn retries_back_off_and_give_up_after_a_day() {
        let created = chrono::Utc::now();
        let mut cb = Callback {
            order_key: "k".into(),
            merchant_id: qrgate_domain::MerchantId::parse("ON00000001").unwrap(),
            url: "https://m.example/".into(),
            status: CallbackStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(created),
            created_at: created,
        };
        let gaps: Vec<i64> = (0..6)
            .map(|n| {
                cb.attempts = n;
                let (_, next) = next_attempt(&cb, created);
                (next.unwrap() - created).num_seconds()
            })
            .collect();
        assert_eq!(gaps, vec![15, 60, 300, 900, 3600, 3600]);
        cb.attempts = 30;
        assert_eq!(
            next_attempt(&cb, created + Duration::hours(25)).0,
            CallbackStatus::Dead
        );
    }
}
