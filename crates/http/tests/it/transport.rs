//! The transport under abuse, over real TCP against a served gateway: slow and stalled
//! clients cannot starve the POS endpoint or `/healthz`, slow headers are cut off, every
//! request is answered by its deadline, one address cannot open more than its share of
//! connections, an oversized body gets its 413 answer rather than a reset, and every answer
//! carries the security headers.
//!
//! These run on SQLite only: the transport does not depend on the database, and a flood of
//! a thousand connections per backend would only double the load on a shared machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use qrgate_domain::Currency;
use qrgate_engine::{CreatedMerchant, Engine, FixedClock, MasterKey, MerchantRequest};
use qrgate_http::{AppState, HttpConfig, HttpLimits};
use qrgate_testkit::pos::PosClient;
use qrgate_testkit::TestDb;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bounds for a loaded 2-core machine: what must answer, answers well within them.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

struct Served {
    addr: SocketAddr,
    merchant: CreatedMerchant,
    _db: TestDb,
}

impl Served {
    async fn start(config: HttpConfig) -> Served {
        let db = TestDb::sqlite().await;
        let clock = Arc::new(FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 26, 8, 0, 0).unwrap(),
        ));
        let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock)
            .await
            .unwrap();
        let merchant = engine
            .create_merchant(&MerchantRequest {
                name: "Maple Tea".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().unwrap(),
                id_prefix: "ON".into(),
            })
            .await
            .unwrap();
        engine
            .set_fx_rate(Currency::Cad, "5.1234".parse().unwrap())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(engine, config);
        tokio::spawn(qrgate_http::serve(listener, state, std::future::pending()));
        Served {
            addr,
            merchant,
            _db: db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pos(&self) -> PosClient {
        PosClient::new(
            &self.url("/processV2"),
            self.merchant.merchant.id.as_str(),
            self.merchant.sign_key.expose(),
        )
    }

    /// EX_RATE_QUERY as a POS sends it, answered correctly within `ANSWER_WITHIN`.
    async fn assert_pos_answers(&self) {
        let r = tokio::time::timeout(
            ANSWER_WITHIN,
            self.pos().call("EX_RATE_QUERY", json!({"fee_type": "CAD"})),
        )
        .await
        .expect("the POS endpoint answers while the flood holds its connections");
        assert_eq!(r.rsp_code, "SUCCESS", "{r:?}");
        assert_eq!(r.data.unwrap()["rate"], "512340000");
    }

    /// `/healthz` answers 200 within `ANSWER_WITHIN`.
    async fn assert_healthy(&self, http: &reqwest::Client) {
        let r = tokio::time::timeout(ANSWER_WITHIN, http.get(self.url("/healthz")).send())
            .await
            .expect("/healthz answers while the flood holds its connections")
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    }
}

/// A fresh client: no connection reused from before the flood.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Opens a connection and sends the headers of a POST announcing `content_length` bytes,
/// then `first` bytes of the body.
async fn open_slow_body(addr: SocketAddr, path: &str, content_length: usize) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: qrgate\r\ncontent-type: application/x-www-form-urlencoded\r\n\
         content-length: {content_length}\r\n\r\nx"
    );
    s.write_all(head.as_bytes()).await.ok()?;
    Some(s)
}

/// Opens a connection and sends the start of a request's headers, never their end.
async fn open_slow_headers(addr: SocketAddr, path: &str) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let head = format!("POST {path} HTTP/1.1\r\nhost: qrgate\r\nx-slow: ");
    s.write_all(head.as_bytes()).await.ok()?;
    Some(s)
}

/// Slow clients: every second, one more byte on each connection (of the body or of the
/// header), until dropped. Connections the gateway closed are left alone.
struct Flood {
    task: tokio::task::JoinHandle<()>,
}

impl Flood {
    fn start(mut streams: Vec<TcpStream>) -> Flood {
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut alive = Vec::with_capacity(streams.len());
                for mut s in streams.drain(..) {
                    let wrote =
                        tokio::time::timeout(Duration::from_millis(50), s.write_all(b"x")).await;
                    if matches!(wrote, Ok(Ok(()))) {
                        alive.push(s);
                    }
                }
                streams = alive;
            }
        });
        Flood { task }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the connection was closed by the gateway within `within`, after `trickle` kept
/// sending a byte every 250 ms.
async fn closed_within(mut s: TcpStream, within: Duration) -> bool {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    while started.elapsed() < within {
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => {
                if s.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

fn with_limits(limits: HttpLimits) -> HttpConfig {
    HttpConfig {
        limits,
        ..HttpConfig::default()
    }
}

/// The defaults, but as behind a load balancer: every connection comes from one address, so
/// the per-address cap cannot be what protects the POS endpoint.
fn flood_config() -> HttpConfig {
    with_limits(HttpLimits {
        max_connections_per_ip: 10_000,
        ..HttpLimits::default()
    })
}

/// More than 1,024 connections stalled in their body (the wallets' notification route) or
/// their headers (the till's sign-in) do not keep `/healthz` or a POS from being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_clients_cannot_starve_the_pos_endpoint_or_healthz() {
    let gw = Served::start(flood_config()).await;
    let mut streams = Vec::new();
    for i in 0..1_100 {
        let path = if i % 2 == 0 {
            "/notify/alipay"
        } else {
            "/pos/sign-in"
        };
        if let Some(s) = open_slow_body(gw.addr, path, 100_000).await {
            streams.push(s);
        }
    }
    for _ in 0..100 {
        if let Some(s) = open_slow_headers(gw.addr, "/pos/sign-in").await {
            streams.push(s);
        }
    }
    assert!(streams.len() > 1_024, "opened {}", streams.len());
    let flood = Flood::start(streams);

    // Wait until the flood is in effect: the till's sign-in page, which shares the
    // unauthenticated routes' slots, is refused as busy (or not answered at all).
    let http = client();
    let started = Instant::now();
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            http.get(gw.url("/pos/sign-in")).send(),
        )
        .await;
        match r {
            Err(_) => break,
            Ok(Ok(r)) if r.status() == 503 => break,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the flood never filled the unauthenticated routes' slots"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for _ in 0..3 {
        gw.assert_healthy(&http).await;
        gw.assert_pos_answers().await;
    }
    // The public routes are refused as busy, not left hanging.
    let r = tokio::time::timeout(ANSWER_WITHIN, http.get(gw.url("/pos/sign-in")).send())
        .await
        .expect("a public route is refused at once when its slots are taken")
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");

    // Once the flood is gone, the till is served again.
    drop(flood);
    let started = Instant::now();
    loop {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            http.get(gw.url("/pos/sign-in")).send(),
        )
        .await;
        if matches!(&r, Ok(Ok(r)) if r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the till was not served again after the flood: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Headers that trickle in are cut off at the header timeout, however steadily they come,
/// and so is a connection that sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_after_the_header_timeout() {
    let gw = Served::start(with_limits(HttpLimits {
        header_read_timeout: Duration::from_secs(2),
        ..HttpLimits::default()
    }))
    .await;
    let trickling = open_slow_headers(gw.addr, "/pos/sign-in").await.unwrap();
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    let (trickling, silent) = tokio::join!(
        closed_within(trickling, Duration::from_secs(30)),
        closed_within(silent, Duration::from_secs(30)),
    );
    assert!(
        trickling,
        "a connection still sending its headers after 30 s was not closed"
    );
    assert!(silent, "a connection silent for 30 s was not closed");
    gw.assert_pos_answers().await;
}

/// Between requests, a kept-alive connection may stay idle longer than the header timeout
/// (a load balancer's pooled connection), up to the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    let gw = Served::start(with_limits(HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(6),
        ..HttpLimits::default()
    }))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nhost: qrgate\r\n\r\n";
    s.write_all(get).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Idle for three header timeouts, half the idle timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.write_all(get).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // Then left idle, it is closed.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
        .await
        .expect("an idle connection is closed after the idle timeout");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

    // Once the next request's headers start, they get the header timeout, not the idle one.
    let gw = Served::start(with_limits(HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(600),
        ..HttpLimits::default()
    }))
    .await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(get).await.unwrap();
    assert!(read_response(&mut s).await.starts_with("HTTP/1.1 200"));
    s.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    assert!(
        closed_within(s, Duration::from_secs(60)).await,
        "headers trickling on a kept-alive connection were not cut off"
    );
}

/// One answer on a kept-alive connection: the head, then `content-length` bytes.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(ANSWER_WITHIN, s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// A client that keeps sending its body is answered at the request deadline all the same:
/// 503, with a `TIMEOUT` envelope on the POS endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_answered_by_its_deadline() {
    let gw = Served::start(with_limits(HttpLimits {
        request_timeout: Duration::from_secs(2),
        ..HttpLimits::default()
    }))
    .await;
    let notify = open_slow_body(gw.addr, "/notify/alipay", 100_000)
        .await
        .unwrap();
    let pos = open_slow_body(gw.addr, "/processV2", 10_000).await.unwrap();
    let (notify, pos) = tokio::join!(answer_while_trickling(notify), answer_while_trickling(pos));
    assert!(notify.starts_with("HTTP/1.1 503"), "{notify}");
    assert!(
        notify.contains("request not answered within 2 s"),
        "{notify}"
    );
    assert!(pos.starts_with("HTTP/1.1 503"), "{pos}");
    let envelope: Value = serde_json::from_str(pos.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(envelope["rsp_code"], "TIMEOUT", "{envelope}");
    assert!(
        envelope["rsp_msg"]
            .as_str()
            .unwrap()
            .starts_with("request not answered within 2 s"),
        "{envelope}"
    );
}

/// Sends a byte of body every 250 ms until the answer starts, then reads it to the end.
async fn answer_while_trickling(mut s: TcpStream) -> String {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < ANSWER_WITHIN {
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) if got.is_empty() => {
                let _ = s.write_all(b"x").await;
            }
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Connections from one address beyond its cap are closed unanswered; one closing makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_open_more_than_its_share_of_connections() {
    let gw = Served::start(with_limits(HttpLimits {
        max_connections_per_ip: 4,
        header_read_timeout: Duration::from_secs(60),
        ..HttpLimits::default()
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    let mut refused = TcpStream::connect(gw.addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: qrgate\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(ANSWER_WITHIN, refused.read(&mut buf))
        .await
        .expect("a connection over the cap is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "answered: {read:?}");

    // One of the four goes: a new connection is served.
    held.pop();
    let http = client();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(gw.url("/healthz")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "no room made when a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every answer carries the headers that are harmless everywhere; the till's pages carry a
/// strict policy of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let gw = Served::start(HttpConfig::default()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let envelope = gw.pos().envelope(
        "EX_RATE_QUERY",
        json!({"fee_type": "CAD"}).as_object().unwrap(),
    );
    let pos = http
        .post(gw.url("/processV2"))
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(pos.status(), 200);
    let page = http.get(gw.url("/pos/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let redirect = http.get(gw.url("/pos")).send().await.unwrap();
    assert_eq!(redirect.status(), 303);
    let script = http
        .get(gw.url("/pos/assets/till.js"))
        .send()
        .await
        .unwrap();
    let health = http.get(gw.url("/healthz")).send().await.unwrap();
    let missing = http.get(gw.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    for (what, r) in [
        ("POS answer", &pos),
        ("sign-in page", &page),
        ("redirect", &redirect),
        ("script", &script),
        ("health", &health),
        ("404", &missing),
    ] {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe"), "{what}: {csp}");
    }
    for (what, r) in [("POS answer", &pos), ("health", &health)] {
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, "default-src 'none'; frame-ancestors 'none'", "{what}");
    }
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    for directive in [
        "script-src 'self'",
        "style-src 'self' 'sha256-",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    // The page itself needs nothing the policy forbids: no inline script or style
    // attribute.
    let body = page.text().await.unwrap();
    assert!(
        !body.contains("<script>") && !body.contains(" style="),
        "{body}"
    );
}

/// A plain client that writes the whole of an oversized body before reading (as Python's
/// urllib does) gets the 413 answer with its envelope every time, never a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_their_413_answer_not_a_reset() {
    let gw = Served::start(HttpConfig::default()).await;
    assert_eq!(HttpConfig::default().body_limit_bytes, 65_536);
    let body = vec![b' '; 2 * 1024 * 1024];
    let mut failures = Vec::new();
    for i in 0..30 {
        match post_plainly(gw.addr, "/processV2", &body).await {
            Ok(answer) => {
                let (head, json) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
                if !head.starts_with("HTTP/1.1 413") {
                    failures.push(format!("#{i}: {head}"));
                    continue;
                }
                let envelope: Value = serde_json::from_str(json).unwrap();
                assert_eq!(envelope["rsp_code"], "PARAM_ERROR", "{envelope}");
                assert_eq!(
                    envelope["rsp_msg"], "request body is larger than 65536 bytes",
                    "{envelope}"
                );
            }
            Err(e) => failures.push(format!("#{i}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 30 failed: {failures:?}",
        failures.len()
    );

    // The body was read to its end: the connection stays usable.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /processV2 HTTP/1.1\r\nhost: qrgate\r\ncontent-length: 200000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&body[..200_000]).await.unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: qrgate\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A client that waits for `100 Continue` is refused before it sends the body.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(
        b"POST /processV2 HTTP/1.1\r\nhost: qrgate\r\ncontent-length: 2097152\r\n\
          expect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"rsp_code\":\"PARAM_ERROR\""), "{answer}");
}

/// Writes a whole POST, then reads the whole answer (the request asks to close).
async fn post_plainly(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<String> {
    // A small send buffer and chunks: the body is still on its way when the gateway has
    // answered, as over a real network (on loopback the kernel would take it all at once).
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_send_buffer_size(32 * 1024)?;
    let mut s = socket.connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: qrgate\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    for chunk in body.chunks(16 * 1024) {
        s.write_all(chunk).await?;
        tokio::task::yield_now().await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(ANSWER_WITHIN, s.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer in time"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}
