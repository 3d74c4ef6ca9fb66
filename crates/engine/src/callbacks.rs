//! Notifications to merchants (OTTPAY's "call-back", `ottpay.md` §6 and §13): queued in the
//! same transaction as the order becoming paid (the store's outbox), delivered at least once
//! with a bounded number of deliveries at a time, retried with backoff for a day, every attempt
//! recorded. Any 2xx whose body is not `fail` counts as delivered (§13.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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
    /// Deliver to loopback, private and other special-purpose addresses too ([`is_special`]:
    /// the demo). Off in production, so a merchant's `call_back_url` cannot reach the gateway's
    /// own network. Redirects are never followed either way.
    pub allow_private: bool,
    pub timeout: StdDuration,
    pub format: Option<std::sync::Arc<dyn NotificationFormat>>,
    /// Resolves merchants' host names: the system's resolver when `None`. Tests give their own,
    /// so that names resolve to addresses on this machine.
    pub resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    /// Addresses taken as public although they are not: none in production. Tests never send
    /// traffic off the machine, so a loopback address stands for a merchant's public one.
    pub treat_as_public: Vec<IpAddr>,
}

impl std::fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackSettings")
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("treat_as_public", &self.treat_as_public)
            .finish_non_exhaustive()
    }
}

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            allow_private: false,
            timeout: StdDuration::from_secs(10),
            format: None,
            resolver: None,
            treat_as_public: Vec::new(),
        }
    }
}

/// IPv4 blocks that `std` has no stable method for, from IANA's IPv4 Special-Purpose Address
/// Registry (<https://www.iana.org/assignments/iana-ipv4-special-registry>, as published in
/// 2025). The registry's other blocks are `std`'s: `is_private` (10/8, 172.16/12,
/// 192.168/16), `is_loopback` (127/8), `is_link_local` (169.254/16, with the cloud metadata
/// address 169.254.169.254), `is_documentation` (192.0.2/24, 198.51.100/24, 203.0.113/24) and
/// `is_broadcast`; multicast (224/4, a registry of its own) is `is_multicast`. Every block is
/// refused, the few "globally reachable" anycast ones too: no merchant's server lives there.
const SPECIAL_V4: [(Ipv4Addr, u8); 9] = [
    // "This network" (RFC 791), with 0.0.0.0, which connects to this machine.
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    // Shared address space, carrier-grade NAT (RFC 6598), with the cloud metadata address
    // 100.100.100.200.
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    // IETF protocol assignments (RFC 6890): 192.0.0.0/29, .8, .9, .10, .170, .171.
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    // AS112-v4 (RFC 7535).
    (Ipv4Addr::new(192, 31, 196, 0), 24),
    // AMT (RFC 7450).
    (Ipv4Addr::new(192, 52, 193, 0), 24),
    // Deprecated 6to4 relay anycast (RFC 7526).
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    // Direct delegation AS112 service (RFC 7534).
    (Ipv4Addr::new(192, 175, 48, 0), 24),
    // Benchmarking (RFC 2544).
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    // Reserved (RFC 1112), with the limited broadcast 255.255.255.255.
    (Ipv4Addr::new(240, 0, 0, 0), 4),
];

/// IPv6 blocks that `std` has no stable method for, from IANA's IPv6 Special-Purpose Address
/// Registry (<https://www.iana.org/assignments/iana-ipv6-special-registry>, as published in
/// 2025). `std` gives `is_unspecified`, `is_loopback`, `is_unique_local` (fc00::/7),
/// `is_unicast_link_local` (fe80::/10) and `is_multicast` (ff00::/8). The forms that embed an
/// IPv4 address (::ffff:0:0/96, 64:ff9b::/96, 2002::/16) are judged by that address, in
/// [`is_special`].
const SPECIAL_V6: [(Ipv6Addr, u8); 10] = [
    // IPv4-compatible addresses (deprecated, RFC 4291 §2.5.5.1), with :: and ::1.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    // IPv4/IPv6 translation, local use (RFC 8215).
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    // Discard-only (RFC 6666).
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    // Dummy prefix (RFC 9780).
    (Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0), 64),
    // IETF protocol assignments (RFC 2928): Teredo 2001::/32, the anycast 2001:1::1-3,
    // benchmarking 2001:2::/48, AMT 2001:3::/32, AS112 2001:4:112::/48, ORCHID 2001:10::/28,
    // ORCHIDv2 2001:20::/28, drone remote ID 2001:30::/28.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    // Documentation (RFC 3849).
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    // Direct delegation AS112 service (RFC 7534).
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48),
    // Documentation (RFC 9637).
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    // SRv6 segment identifiers (RFC 9602).
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),
    // Site-local (deprecated, RFC 3879).
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
];

/// Global unicast, the only IPv6 space IANA allocates (its IPv6 Address Space registry): the
/// rest is reserved by the IETF, unique-local, link-local or multicast.
const GLOBAL_UNICAST: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
/// The well-known NAT64 prefix (RFC 6052): the IPv4 address is the last 32 bits.
const NAT64: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
/// 6to4 (RFC 3056): the IPv4 address is the 32 bits after the prefix.
const SIX_TO_FOUR: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

fn in_v4(ip: Ipv4Addr, (base, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base)
}

fn in_v6(ip: Ipv6Addr, (base, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(base)
}

fn is_special_v4(ip: Ipv4Addr) -> bool {
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_documentation()
        || ip.is_broadcast()
        || ip.is_multicast()
        || SPECIAL_V4.iter().any(|&block| in_v4(ip, block))
}

/// Whether an address is one a merchant's URL must not reach: any block of IANA's IPv4 and
/// IPv6 special-purpose address registries, multicast, IPv6 outside global unicast, and the
/// IPv6 forms of such IPv4 addresses.
pub fn is_special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_special_v4(v4),
        IpAddr::V6(v6) => {
            // An address that embeds an IPv4 address reaches that address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_special_v4(v4);
            }
            let bits = u128::from(v6);
            let embedded = |shift: u32| {
                Ipv4Addr::from(u32::try_from((bits >> shift) & 0xffff_ffff).unwrap_or(0))
            };
            if in_v6(v6, NAT64) {
                return is_special_v4(embedded(0));
            }
            if in_v6(v6, SIX_TO_FOUR) {
                return is_special_v4(embedded(80));
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || v6.is_multicast()
                || SPECIAL_V6.iter().any(|&block| in_v6(v6, block))
                || !in_v6(v6, GLOBAL_UNICAST)
        }
    }
}

/// Which addresses notifications may go to.
#[derive(Debug, Clone)]
struct AddressPolicy {
    allow_private: bool,
    treat_as_public: Vec<IpAddr>,
}

impl AddressPolicy {
    fn of(settings: &CallbackSettings) -> AddressPolicy {
        AddressPolicy {
            allow_private: settings.allow_private,
            treat_as_public: settings.treat_as_public.clone(),
        }
    }

    fn refuses(&self, ip: IpAddr) -> bool {
        !self.allow_private && is_special(ip) && !self.treat_as_public.contains(&ip)
    }
}

/// Checks a `call_back_url` when an order is created: http(s) with a host, and, unless private
/// networks are allowed, neither a special-purpose address ([`is_special`]) nor a `localhost`
/// name. Other names are checked as they are resolved, at each delivery.
pub fn check_callback_url(url: &str, allow_private: bool) -> Result<(), String> {
    let policy = AddressPolicy {
        allow_private,
        treat_as_public: Vec::new(),
    };
    check_url(url, &policy)
}

fn check_url(url: &str, policy: &AddressPolicy) -> Result<(), String> {
    let parsed = url::Url::parse(url)
        .map_err(|_| "invalid call_back_url: expected an http(s) URL".to_owned())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() || url.len() > 512 {
        return Err("invalid call_back_url: expected an http(s) URL".into());
    }
    if policy.allow_private {
        return Ok(());
    }
    let refused = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => policy.refuses(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => policy.refuses(IpAddr::V6(ip)),
        // RFC 6761 §6.3: `localhost` and the names under it are this machine.
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    };
    if refused {
        return Err(format!(
            "invalid call_back_url: {} is a private or special-purpose address",
            parsed.host_str().unwrap_or_default()
        ));
    }
    Ok(())
}

/// A host name refused because it resolves to a special-purpose address.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The delivery client's resolver: resolves a merchant's host name once per connection and
/// refuses it when any of its addresses is special, so that the client connects only to an
/// address that was checked (there is no second lookup that DNS could answer differently).
struct CheckedResolver {
    inner: Option<Arc<dyn reqwest::dns::Resolve>>,
    policy: Arc<AddressPolicy>,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let inner = self.inner.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = match inner {
                Some(resolver) => resolver.resolve(name).await?.collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            if let Some(ip) = addrs
                .iter()
                .map(SocketAddr::ip)
                .find(|ip| policy.refuses(*ip))
            {
                let refused = Refused(format!(
                    "refused: {host} resolves to {ip}, a private or special-purpose address"
                ));
                return Err(refused.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client that delivers notifications.
pub(crate) fn client(settings: &CallbackSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver {
            inner: settings.resolver.clone(),
            policy: Arc::new(AddressPolicy::of(settings)),
        }))
        // A redirect is an answer like any other: recorded with its status and retried on the
        // schedule. Followed, it would take the notification wherever the merchant's server
        // points, unchecked.
        .redirect(reqwest::redirect::Policy::none())
        // No proxy from the environment: the connection goes to the address that was checked.
        .no_proxy()
        // A connection of its own, so a resolution and a check of its own, for each delivery.
        .pool_max_idle_per_host(0)
        .build()
}

/// What a failed request is recorded as: the refusal, when its name was refused.
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        source = err.source();
    }
    format!("request failed: {e}")
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
        // Checked again at every delivery: the URL may have been stored under older rules. Its
        // host name is checked as the client resolves it (`CheckedResolver`).
        check_url(&callback.url, &AddressPolicy::of(&self.callback_settings))
            .map_err(|e| format!("refused: {e}"))?;
        let response = self
            .callback_client
            .post(callback.url.as_str())
            .timeout(self.callback_settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status().as_u16();
        let text = read_capped(response, ANSWER_LIMIT_BYTES).await;
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

/// How much of a merchant's answer is read: enough for `success`/`fail` and for the first
/// 120 characters kept with the attempt. The rest is never read, so a merchant answering
/// megabytes cannot make the gateway hold them.
const ANSWER_LIMIT_BYTES: usize = 4096;

/// The start of `response`'s body, at most `limit` bytes (lossy UTF-8); the connection is
/// dropped with the rest unread.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> String {
    let mut body: Vec<u8> = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or(&chunk));
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
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
            // Bypasses of the first check (issue 13 §5).
            "http://100.100.100.200/latest/meta-data",
            "http://100.64.0.1/n",
            "http://198.18.0.1/n",
            "http://0.1.2.3/n",
            "http://0.0.0.0:8080/n",
            "http://2130706433/n",
            "http://0x7f.1/n",
            "http://[::ffff:100.64.0.1]/n",
            "http://[::127.0.0.1]/n",
            "http://[64:ff9b::a9fe:a9fe]/n",
            "http://[2002:a00:1::1]/n",
            "http://[2001::1]/n",
            "http://[fec0::1]/n",
            "http://[2001:db8::1]/n",
            "http://LOCALHOST./n",
            "http://till.localhost/n",
        ] {
            assert!(check_callback_url(url, false).is_err(), "{url}");
            assert!(check_callback_url(url, true).is_ok(), "{url}");
        }
        assert!(check_callback_url("https://merchant.example/notify?code=x", false).is_ok());
        assert!(check_callback_url("https://8.8.8.8/n", false).is_ok());
        assert!(check_callback_url("https://[2606:4700:4700::1111]/n", false).is_ok());
        assert!(check_callback_url("https://localhost.example/n", false).is_ok());
        assert!(check_callback_url("ftp://merchant.example/", true).is_err());
        assert!(check_callback_url("not a url", true).is_err());
    }

    /// Each special-purpose block at both of its edges, and the addresses just outside it
    /// where those are ordinary ones. Written out by hand, not derived from the tables.
    #[test]
    fn special_purpose_blocks_are_refused_at_both_edges() {
        const EDGES: &[(&str, bool)] = &[
            // IPv4. "This network" 0/8.
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            // Private 10/8.
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            // Shared address space 100.64/10, with a cloud metadata address.
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.100.100.200", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            // Loopback 127/8.
            ("126.255.255.255", false),
            ("127.0.0.0", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            // Link-local 169.254/16, with the cloud metadata address.
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.254.255.255", true),
            ("169.255.0.0", false),
            // Private 172.16/12.
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            // IETF protocol assignments 192.0.0/24, then documentation 192.0.2/24.
            ("191.255.255.255", false),
            ("192.0.0.0", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            ("192.0.1.255", false),
            ("192.0.2.0", true),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            // AS112-v4 192.31.196/24.
            ("192.31.195.255", false),
            ("192.31.196.0", true),
            ("192.31.196.255", true),
            ("192.31.197.0", false),
            // AMT 192.52.193/24.
            ("192.52.192.255", false),
            ("192.52.193.0", true),
            ("192.52.193.255", true),
            ("192.52.194.0", false),
            // 6to4 relay anycast 192.88.99/24.
            ("192.88.98.255", false),
            ("192.88.99.0", true),
            ("192.88.99.255", true),
            ("192.88.100.0", false),
            // Private 192.168/16.
            ("192.167.255.255", false),
            ("192.168.0.0", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            // AS112 direct delegation 192.175.48/24.
            ("192.175.47.255", false),
            ("192.175.48.0", true),
            ("192.175.48.255", true),
            ("192.175.49.0", false),
            // Benchmarking 198.18/15.
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            // Documentation 198.51.100/24 and 203.0.113/24.
            ("198.51.99.255", false),
            ("198.51.100.0", true),
            ("198.51.100.255", true),
            ("198.51.101.0", false),
            ("203.0.112.255", false),
            ("203.0.113.0", true),
            ("203.0.113.255", true),
            ("203.0.114.0", false),
            // Multicast 224/4, reserved 240/4, broadcast.
            ("223.255.255.255", false),
            ("224.0.0.0", true),
            ("239.255.255.255", true),
            ("240.0.0.0", true),
            ("255.255.255.254", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            // IPv6. Unspecified, loopback, IPv4-compatible ::/96.
            ("::", true),
            ("::1", true),
            ("::8.8.8.8", true),
            ("::ffff:ffff", true),
            // IPv4-mapped: judged by the IPv4 address.
            ("::ffff:0.0.0.0", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:100.100.100.200", true),
            ("::ffff:255.255.255.255", true),
            ("::ffff:8.8.8.8", false),
            // NAT64 64:ff9b::/96: judged by the IPv4 address.
            ("64:ff9b::", true),
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::c612:1", true),
            ("64:ff9b::ffff:ffff", true),
            ("64:ff9b::808:808", false),
            // NAT64 local use 64:ff9b:1::/48: refused whatever it embeds.
            ("64:ff9b:1::", true),
            ("64:ff9b:1::808:808", true),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true),
            // Discard-only and dummy prefixes.
            ("100::", true),
            ("100::ffff:ffff:ffff:ffff", true),
            ("100:0:0:1::", true),
            ("100:0:0:1:ffff:ffff:ffff:ffff", true),
            // Outside global unicast 2000::/3.
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("4000::", true),
            // IETF protocol assignments 2001::/23, with Teredo and ORCHIDv2.
            ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001::", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("2001:20::1", true),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:200::", false),
            // Documentation 2001:db8::/32.
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db8::", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            // 6to4 2002::/16: judged by the IPv4 address.
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2002::", true),
            ("2002:7f00:1::1", true),
            ("2002:c0a8:101::1", true),
            ("2002:6464:64c8::", true),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2002:808:808::1", false),
            ("2003::", false),
            // AS112 direct delegation 2620:4f:8000::/48.
            ("2620:4f:7fff:ffff:ffff:ffff:ffff:ffff", false),
            ("2620:4f:8000::", true),
            ("2620:4f:8000:ffff:ffff:ffff:ffff:ffff", true),
            ("2620:4f:8001::", false),
            // Documentation 3fff::/20.
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("3fff::", true),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("3fff:1000::", false),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // SRv6 SIDs 5f00::/16.
            ("5f00::", true),
            ("5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            // Unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast.
            ("fc00::", true),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fe80::", true),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fec0::", true),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("ff00::", true),
            ("ff02::1", true),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2606:4700:4700::1111", false),
            ("2a00:1450:4001:82a::200e", false),
        ];
        let wrong: Vec<_> = EDGES
            .iter()
            .filter(|(ip, special)| is_special(ip.parse().unwrap()) != *special)
            .collect();
        assert!(wrong.is_empty(), "judged wrongly: {wrong:?}");
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
