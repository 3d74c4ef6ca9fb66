//! Merchant notifications cannot be turned against the gateway's own network: no redirect is
//! followed, the address connected to is the one checked, and every special-purpose address is
//! refused at each delivery.
//!
//! Real HTTP servers on loopback addresses and a resolver the test controls: `merchant.test`
//! and friends resolve to addresses on this machine, and 127.0.0.1 stands for a merchant's
//! public address (`CallbackSettings::treat_as_public`), while 127.0.0.2 plays the gateway's
//! internal network, which must never receive anything. Nothing leaves the machine. These
//! tests are about the delivery client, not the database: they run on SQLite only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use qrgate_domain::{
    Currency, Merchant, MerchantOrderId, Money, Order, OrderStatus, PaymentMode, Wallet,
};
use qrgate_engine::{
    CallbackSettings, Engine, FixedClock, MasterKey, MerchantRequest, NotificationFormat,
};
use qrgate_store::{CallbackAttempt, CallbackStatus};
use qrgate_testkit::TestDb;

const PUBLIC: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const INTERNAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// One request a server received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    body: String,
}

#[derive(Clone)]
struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

/// A real HTTP/1.1 server on one address: records every request, answers what it is told to,
/// one request per connection.
#[derive(Clone)]
struct Server {
    got: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

impl Server {
    fn start(listener: TcpListener) -> Server {
        let server = Server {
            got: Arc::default(),
            answer: Arc::new(Mutex::new(Answer {
                status: 200,
                location: None,
                body: "OK".into(),
            })),
        };
        let state = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        let _ = state.serve(stream);
                    }
                    Err(_) => return,
                }
            }
        });
        server
    }

    fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let path = request_line.next().unwrap_or_default().to_owned();
        let length = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let end = buf.len().min(head_end + length);
        let body = String::from_utf8_lossy(&buf[head_end..end]).into_owned();
        self.got
            .lock()
            .unwrap()
            .push(Received { method, path, body });
        let answer = self.answer.lock().unwrap().clone();
        let location = answer
            .location
            .map(|l| format!("location: {l}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "HTTP/1.1 {} Whatever\r\n{location}content-length: {}\r\nconnection: close\r\n\r\n{}",
            answer.status,
            answer.body.len(),
            answer.body
        )?;
        stream.flush()
    }

    fn answer(&self, status: u16, location: Option<&str>, body: &str) {
        *self.answer.lock().unwrap() = Answer {
            status,
            location: location.map(str::to_owned),
            body: body.to_owned(),
        };
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Two servers on one port: the merchant's ("public", 127.0.0.1) and the gateway's internal
/// network's (127.0.0.2). One port, because a URL names one port whatever its name resolves to.
fn servers() -> (u16, Server, Server) {
    for _ in 0..50 {
        let public = TcpListener::bind((PUBLIC, 0)).unwrap();
        let port = public.local_addr().unwrap().port();
        if let Ok(internal) = TcpListener::bind((INTERNAL, port)) {
            return (port, Server::start(public), Server::start(internal));
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// A resolver the test controls: each name answers the next of its lists of addresses (the
/// last one again once they run out), and every lookup is counted.
#[derive(Default)]
struct Resolver {
    answers: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
    lookups: Mutex<HashMap<String, usize>>,
}

impl Resolver {
    fn answer(&self, name: &str, answers: &[&[IpAddr]]) {
        self.answers.lock().unwrap().insert(
            name.to_owned(),
            answers.iter().map(|a| a.to_vec()).collect(),
        );
    }

    fn lookups(&self, name: &str) -> usize {
        self.lookups.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        let n = {
            let mut lookups = self.lookups.lock().unwrap();
            let n = lookups.entry(name.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let found = self.answers.lock().unwrap().get(&name).map(|answers| {
            let i = n.min(answers.len()) - 1;
            answers[i].clone()
        });
        Box::pin(async move {
            let ips = found.ok_or_else(|| format!("{name}: no such name"))?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The notification's body: the order id, enough to recognise it.
struct Plain;

impl NotificationFormat for Plain {
    fn body(&self, order: &Order, _merchant: &Merchant, _sign_key: &str) -> String {
        format!("{{\"order_id\":\"{}\"}}", order.order_id.as_str())
    }
}

struct World {
    _db: TestDb,
    engine: Engine,
    clock: Arc<FixedClock>,
    resolver: Arc<Resolver>,
    merchant: Merchant,
}

impl World {
    async fn start() -> World {
        let db = TestDb::sqlite().await;
        let clock = Arc::new(FixedClock::new(Utc::now()));
        let resolver = Arc::new(Resolver::default());
        let engine = Engine::new(db.store.clone(), MasterKey::generate(), clock.clone())
            .await
            .unwrap()
            .with_callback_settings(CallbackSettings {
                allow_private: false,
                timeout: std::time::Duration::from_secs(3),
                format: Some(Arc::new(Plain)),
                resolver: Some(resolver.clone()),
                treat_as_public: vec![PUBLIC],
            })
            .unwrap();
        let merchant = engine
            .create_merchant(&MerchantRequest {
                name: "Maple Tea".into(),
                currency: Currency::Cad,
                time_zone: "America/Toronto".parse().unwrap(),
                id_prefix: "ON".into(),
            })
            .await
            .unwrap()
            .merchant;
        World {
            _db: db,
            engine,
            clock,
            resolver,
            merchant,
        }
    }

    /// An ACTIVEPAY order becoming paid, which queues its notification to `url` (stored as is:
    /// as if it had been accepted before, or its name resolved elsewhere then).
    async fn paid_order(&self, order_id: &str, url: &str) -> String {
        let now = self.engine.now();
        let cad = |minor| Money::new(minor, Currency::Cad);
        let mut order = Order {
            key: format!("K{:0>24}", order_id),
            merchant_id: self.merchant.id.clone(),
            order_id: MerchantOrderId::parse(order_id).unwrap(),
            mode: PaymentMode::Active,
            wallet: Wallet::Alipay,
            amount: cad(1000),
            tip: cad(0),
            cny_amount: None,
            rate: None,
            operator_id: None,
            terminal_no: None,
            sale_num: None,
            status: OrderStatus::Pending,
            wallet_code: None,
            wallet_message: None,
            channel_ref: Some(format!("T{order_id}")),
            buyer: None,
            paid_at: None,
            wallet_created_at: now,
            next_check_at: Some(now + Duration::minutes(5)),
            request_digest: format!("d{order_id}"),
            code_url: Some("https://qr.example/x".into()),
            expires_at: Some(now + Duration::minutes(15)),
            call_back_url: Some(url.to_owned()),
            refund_reserved: cad(0),
            refunded: cad(0),
            cancel_requested_at: None,
            created_at: now,
            updated_at: now,
        };
        let store = self.engine.store();
        store.insert_order(&order).await.unwrap();
        order.status = OrderStatus::Paid;
        order.paid_at = Some(now);
        order.next_check_at = None;
        assert!(store
            .update_order(&order, OrderStatus::Pending, None, now)
            .await
            .unwrap());
        order.key
    }

    async fn deliver(&self) {
        self.engine.deliver_due_callbacks("t", 32).await.unwrap();
    }

    async fn attempts(&self, key: &str) -> Vec<CallbackAttempt> {
        self.engine.callback_attempts(key).await.unwrap()
    }

    async fn status(&self, key: &str) -> CallbackStatus {
        self.engine
            .store()
            .callback(key)
            .await
            .unwrap()
            .unwrap()
            .status
    }
}

/// A redirect is a failed attempt with its status, retried on the schedule; it is never
/// followed, neither to the internal network nor back to the merchant itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed() {
    let w = World::start().await;
    let (port, merchant, internal) = servers();
    w.resolver.answer("merchant.test", &[&[PUBLIC]]);
    let key = w
        .paid_order("R1", &format!("http://merchant.test:{port}/notify"))
        .await;

    // 307 keeps the method and body: followed, the notification would be posted inside.
    merchant.answer(307, Some(&format!("http://{INTERNAL}:{port}/inside")), "");
    w.deliver().await;
    // 302 to an address that passes the check: still not followed.
    w.clock.advance(Duration::seconds(15));
    merchant.answer(302, Some(&format!("http://merchant.test:{port}/moved")), "");
    w.deliver().await;

    assert!(internal.got().is_empty(), "{:?}", internal.got());
    let got = merchant.got();
    assert_eq!(got.len(), 2, "{got:?}");
    for r in &got {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/notify"));
        assert_eq!(r.body, "{\"order_id\":\"R1\"}");
    }
    let attempts = w.attempts(&key).await;
    let statuses: Vec<_> = attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, vec![Some(307), Some(302)]);
    assert_eq!(w.status(&key).await, CallbackStatus::Pending);
    let next = w
        .engine
        .store()
        .callback(&key)
        .await
        .unwrap()
        .unwrap()
        .next_attempt_at;
    assert_eq!(
        next,
        Some(attempts[1].at + Duration::seconds(60)),
        "retried"
    );

    // Once the merchant answers 200 itself, it is delivered.
    w.clock.advance(Duration::seconds(60));
    merchant.answer(200, None, "OK");
    w.deliver().await;
    assert_eq!(w.status(&key).await, CallbackStatus::Delivered);
    assert!(internal.got().is_empty());
}

/// The name is resolved once per delivery, and the connection goes to the address that was
/// checked: a name that answers a public address for the check and an internal one for the
/// connection (DNS rebinding) reaches nothing inside. Each delivery checks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_connected_to_is_the_one_checked() {
    let w = World::start().await;
    let (port, merchant, internal) = servers();
    w.resolver
        .answer("rebind.test", &[&[PUBLIC], &[INTERNAL], &[PUBLIC]]);
    let key = w
        .paid_order("D1", &format!("http://rebind.test:{port}/notify"))
        .await;

    // First delivery: the public answer, checked and connected to; the merchant is down.
    merchant.answer(500, None, "down");
    w.deliver().await;
    assert!(
        internal.got().is_empty(),
        "the internal network got the notification: {:?}",
        internal.got()
    );
    assert_eq!(merchant.got().len(), 1);
    assert_eq!(w.resolver.lookups("rebind.test"), 1, "resolved once");

    // Second delivery: the name now answers the internal address: refused, nothing sent.
    w.clock.advance(Duration::seconds(15));
    merchant.answer(200, None, "OK");
    w.deliver().await;
    assert_eq!(w.resolver.lookups("rebind.test"), 2, "resolved again");
    assert!(internal.got().is_empty(), "{:?}", internal.got());
    assert_eq!(merchant.got().len(), 1);
    let attempts = w.attempts(&key).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].http_status, Some(500));
    assert_eq!(attempts[1].http_status, None);
    assert!(
        attempts[1].excerpt.contains("refused") && attempts[1].excerpt.contains("127.0.0.2"),
        "{}",
        attempts[1].excerpt
    );
    assert_eq!(w.status(&key).await, CallbackStatus::Pending);

    // Third: public again, delivered.
    w.clock.advance(Duration::seconds(60));
    w.deliver().await;
    assert_eq!(w.resolver.lookups("rebind.test"), 3);
    assert_eq!(merchant.got().len(), 2);
    assert_eq!(w.status(&key).await, CallbackStatus::Delivered);
    assert!(internal.got().is_empty());
}

/// A name with any special-purpose address among its answers is refused before anything is
/// sent, whichever range it is in, and so is such an address written in the URL itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_addresses_are_refused_at_delivery() {
    let w = World::start().await;
    let (port, merchant, internal) = servers();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let names: [(&str, Vec<IpAddr>); 6] = [
        ("mixed.test", vec![PUBLIC, INTERNAL]),
        ("metadata.test", vec![ip("100.100.100.200")]),
        ("link-local.test", vec![ip("169.254.169.254")]),
        ("benchmark.test", vec![ip("198.18.0.1")]),
        ("mapped.test", vec![ip("::ffff:127.0.0.2")]),
        ("nat64.test", vec![ip("64:ff9b::7f00:2")]),
    ];
    let mut keys = Vec::new();
    for (i, (name, ips)) in names.iter().enumerate() {
        w.resolver.answer(name, &[ips]);
        let url = format!("http://{name}:{port}/notify");
        keys.push((url.clone(), w.paid_order(&format!("S{i}"), &url).await));
    }
    for (i, url) in [
        format!("http://{INTERNAL}:{port}/notify"),
        format!("http://100.100.100.200:{port}/notify"),
        format!("http://[64:ff9b::7f00:2]:{port}/notify"),
        format!("http://[::127.0.0.2]:{port}/notify"),
        format!("http://localhost:{port}/notify"),
    ]
    .into_iter()
    .enumerate()
    {
        keys.push((url.clone(), w.paid_order(&format!("L{i}"), &url).await));
    }
    w.deliver().await;

    assert!(internal.got().is_empty(), "{:?}", internal.got());
    assert!(merchant.got().is_empty(), "{:?}", merchant.got());
    for (url, key) in &keys {
        let attempts = w.attempts(key).await;
        assert_eq!(attempts.len(), 1, "{url}");
        assert_eq!(attempts[0].http_status, None, "{url}");
        assert!(
            attempts[0].excerpt.contains("refused"),
            "{url}: {}",
            attempts[0].excerpt
        );
        assert_eq!(w.status(key).await, CallbackStatus::Pending, "{url}");
    }
}

/// A merchant whose answer never ends (or runs to megabytes) cannot hold the gateway: only
/// the first few KiB are read, enough to see `success`, and the delivery completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_is_read_only_as_far_as_needed() {
    let w = World::start().await;
    let listener = TcpListener::bind((PUBLIC, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut head = [0u8; 8192];
                let _ = stream.read(&mut head);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n7\r\nsuccess\r\n",
                );
                // Then filler forever (until the gateway hangs up).
                let filler = format!("{:x}\r\n{}\r\n", 1024, " ".repeat(1024));
                while stream.write_all(filler.as_bytes()).is_ok() {}
            });
        }
    });
    w.resolver.answer("endless.test", &[&[PUBLIC]]);
    let key = w
        .paid_order("E1", &format!("http://endless.test:{port}/notify"))
        .await;
    let started = std::time::Instant::now();
    w.deliver().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the delivery waited for the end of the answer: {:?}",
        started.elapsed()
    );
    assert_eq!(w.status(&key).await, CallbackStatus::Delivered);
    let attempts = w.attempts(&key).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].http_status, Some(200));
    assert!(
        attempts[0].excerpt.starts_with("success"),
        "{:?}",
        attempts[0].excerpt
    );
}
