//! The simulated terminals: each calls the gateway's OTTPAY endpoint in turn, waiting for
//! each answer, with the mix of actions asked for.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use qrgate_ottpay::{
    Action, ActivePayRequest, BizType, Cents, PassivePayRequest, RefundRequest, RequestEnvelope,
    ResponseEnvelope, SignKey, StatusQueryRequest,
};
use rand::Rng;
use serde_json::{json, Value};

use super::BenchArgs;

/// What one terminal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Passive,
    Active,
    Status,
    Refund,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Passive => "PASSIVEPAY",
            Kind::Active => "ACTIVEPAY",
            Kind::Status => "STATUS_QUERY",
            Kind::Refund => "REFUND",
        }
    }
}

/// Weights of each kind of request, e.g. `passive=70,active=10,status=15,refund=5`.
#[derive(Debug, Clone)]
pub struct Mix(Vec<(Kind, u32)>);

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected name=weight"))?;
            let kind = match name.trim() {
                "passive" => Kind::Passive,
                "active" => Kind::Active,
                "status" => Kind::Status,
                "refund" => Kind::Refund,
                other => {
                    return Err(format!(
                        "unknown request kind {other:?}: expected passive, active, status or refund"
                    ))
                }
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight must be a whole number"))?;
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        if weights.is_empty() {
            return Err("the mix has no request kind with a weight above 0".into());
        }
        Ok(Mix(weights))
    }
}

impl Mix {
    fn pick(&self, rng: &mut impl Rng) -> Kind {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut n = rng.gen_range(0..total);
        for (kind, w) in &self.0 {
            if n < *w {
                return *kind;
            }
            n -= w;
        }
        self.0[0].0
    }

    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Where the terminals call, and as whom.
pub struct Setup {
    pub call_back_url: String,
    pub endpoint: String,
    pub sandbox_url: String,
    pub merchant_id: String,
    pub sign_key: String,
    pub operator_id: String,
    /// The wallets the terminals take turns with.
    pub wallets: Vec<(&'static str, BizType)>,
}

/// One timed request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub kind: Kind,
    /// From sending the request to the last byte of the answer.
    pub total: Duration,
    /// What the gateway says it spent waiting on wallets (`Server-Timing`).
    pub wallet: Duration,
    /// `rsp_code`, or `HTTP_ERROR` when no OTTPAY answer came.
    pub code: String,
}

pub struct LoadFigures {
    pub samples: Vec<Sample>,
    /// The measured window (after the warm-up).
    pub measured: Duration,
    /// Requests made outside the measured window, and untimed helper calls that failed.
    pub warmup_requests: u64,
    pub helper_errors: u64,
    /// The processes' readings (in the order of `run`'s `pids`) when the measured window
    /// began and when it ended.
    pub cpu_start: Snapshot,
    pub cpu_end: Snapshot,
}

/// The processes' readings and the machine's CPU at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub processes: Vec<super::procfs::Reading>,
    pub machine: Option<super::procfs::MachineCpu>,
}

fn read_all(pids: &[u32]) -> Snapshot {
    Snapshot {
        processes: pids.iter().map(|&pid| super::procfs::read(pid)).collect(),
        machine: super::procfs::machine_cpu(),
    }
}

struct Terminal {
    id: usize,
    customer: String,
    recent_paid: VecDeque<String>,
    sequence: u64,
}

/// The wallets the terminals take turns with: the sandbox's name and the wire's `biz_type`.
pub fn wallet_turns(wallets: &[super::BenchWallet]) -> Vec<(&'static str, BizType)> {
    wallets
        .iter()
        .map(|w| match w {
            super::BenchWallet::Wechat => ("wechat", BizType::WechatPay),
            super::BenchWallet::Alipay => ("alipay", BizType::Alipay),
            super::BenchWallet::Unionpay => ("unionpay", BizType::UnionPay),
        })
        .collect()
}

/// One OTTPAY exchange over HTTP, timed.
async fn call(
    http: &reqwest::Client,
    setup: &Setup,
    key: &SignKey,
    action: Action,
    data: &qrgate_ottpay::Data,
) -> (Sample, Option<Value>) {
    let envelope = RequestEnvelope::seal(
        action,
        &setup.merchant_id,
        None,
        Some(&setup.operator_id),
        data,
        key,
    );
    let started = Instant::now();
    let sent = http
        .post(&setup.endpoint)
        .header("content-type", "application/json")
        .body(envelope.to_json())
        .send()
        .await;
    let kind = match action {
        Action::ActivePay => Kind::Active,
        Action::StatusQuery => Kind::Status,
        Action::Refund => Kind::Refund,
        _ => Kind::Passive,
    };
    let failed = |started: Instant| Sample {
        kind,
        total: started.elapsed(),
        wallet: Duration::ZERO,
        code: "HTTP_ERROR".into(),
    };
    let Ok(response) = sent else {
        return (failed(started), None);
    };
    let wallet = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("wallet;dur="))
        .and_then(|t| t.split(';').next())
        .and_then(|ms| ms.parse::<f64>().ok())
        .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1000.0));
    let Ok(body) = response.bytes().await else {
        return (failed(started), None);
    };
    let total = started.elapsed();
    let Ok(answer) = ResponseEnvelope::parse(&body) else {
        return (failed(started), None);
    };
    let data = answer.open(key).ok().map(Value::Object);
    (
        Sample {
            kind,
            total,
            wallet,
            code: answer.rsp_code,
        },
        data,
    )
}

async fn control(http: &reqwest::Client, setup: &Setup, path: &str, body: Value) -> Option<Value> {
    let r = http
        .post(format!("{}/control{path}", setup.sandbox_url))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// One request of `kind` by terminal `t`. Untimed helper calls (minting a code, paying a QR
/// in the sandbox) happen around it. Returns the sample and whether a helper call failed.
async fn one_request(
    http: &reqwest::Client,
    setup: &Setup,
    key: &SignKey,
    t: &mut Terminal,
    kind: Kind,
) -> (Option<Sample>, bool) {
    t.sequence += 1;
    let order_id = format!("B{}T{}N{}", std::process::id() % 10_000, t.id, t.sequence);
    let wallets = &setup.wallets;
    let (wallet, biz) = wallets[(t.sequence as usize + t.id) % wallets.len()];
    let amount = Cents(rand::thread_rng().gen_range(100..10_000));
    let kind = match kind {
        Kind::Status | Kind::Refund if t.recent_paid.is_empty() => Kind::Passive,
        k => k,
    };
    match kind {
        Kind::Passive => {
            let Some(minted) = control(
                http,
                setup,
                "/codes",
                json!({"customer_id": t.customer, "wallet": wallet, "behaviour": {"kind": "instant"}}),
            )
            .await
            else {
                return (None, true);
            };
            let request = PassivePayRequest {
                order_id: Some(order_id.clone()),
                operator_id: None,
                amount,
                tip: None,
                sale_num: None,
                auth_code: minted["code"].as_str().unwrap_or_default().to_owned(),
                biz_type: biz,
            };
            let (sample, _) = call(http, setup, key, Action::PassivePay, &request.to_data()).await;
            if sample.code == "SUCCESS" {
                t.recent_paid.push_back(order_id);
                if t.recent_paid.len() > 64 {
                    t.recent_paid.pop_front();
                }
            }
            (Some(sample), false)
        }
        Kind::Active => {
            let request = ActivePayRequest {
                order_id: Some(order_id),
                operator_id: None,
                amount,
                tip: None,
                biz_type: biz,
                call_back_url: setup.call_back_url.clone(),
            };
            let (sample, data) =
                call(http, setup, key, Action::ActivePay, &request.to_data()).await;
            let code_url = data
                .as_ref()
                .and_then(|d| d.get("code_url"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let mut helper_failed = false;
            if let Some(code_url) = code_url {
                helper_failed = control(
                    http,
                    setup,
                    "/qr/pay",
                    json!({"code_url": code_url, "customer_id": t.customer}),
                )
                .await
                .is_none();
            }
            (Some(sample), helper_failed)
        }
        Kind::Status => {
            let i = rand::thread_rng().gen_range(0..t.recent_paid.len());
            let request = StatusQueryRequest {
                order_id: t.recent_paid[i].clone(),
            };
            let (sample, _) = call(http, setup, key, Action::StatusQuery, &request.to_data()).await;
            (Some(sample), false)
        }
        Kind::Refund => {
            let i = rand::thread_rng().gen_range(0..t.recent_paid.len());
            let request = RefundRequest {
                order_id: Some(format!("{order_id}R")),
                ori_order_id: t.recent_paid[i].clone(),
                refund_amt: Cents(1),
            };
            let (sample, _) = call(http, setup, key, Action::Refund, &request.to_data()).await;
            (Some(sample), false)
        }
    }
}

pub async fn run(
    http: &reqwest::Client,
    setup: &Setup,
    args: &BenchArgs,
    pids: &[u32],
) -> anyhow::Result<LoadFigures> {
    // One customer per terminal, rich enough for the whole run.
    let mut terminals = Vec::with_capacity(args.terminals);
    for id in 0..args.terminals {
        let customer = control(
            http,
            setup,
            "/customers",
            json!({"name": format!("Bench customer {id}"), "balance_fen": 1_000_000_000_000i64}),
        )
        .await
        .context("cannot create the sandbox's customers")?;
        terminals.push(Terminal {
            id,
            customer: customer["id"].as_str().unwrap_or_default().to_owned(),
            recent_paid: VecDeque::new(),
            sequence: 0,
        });
    }
    let key = SignKey::new(&setup.sign_key);
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    // Each terminal's share of a fixed rate: one request every `interval`.
    let interval = args
        .rate
        .filter(|r| *r > 0)
        .map(|r| Duration::from_secs_f64(args.terminals as f64 / f64::from(r)));
    let done = Arc::new(AtomicU64::new(0));
    let progress = super::report::progress(args);
    let ticker = {
        let done = done.clone();
        let progress = progress.clone();
        let duration = args.duration;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = Instant::now();
                if now < measure_from {
                    progress.set_message("warming up");
                    continue;
                }
                let elapsed = (now - measure_from).min(duration);
                progress.set_position(elapsed.as_millis() as u64);
                let n = done.load(Ordering::Relaxed);
                progress.set_message(format!(
                    "{n} requests, {:.0}/s",
                    n as f64 / elapsed.as_secs_f64().max(0.001)
                ));
                if now >= end {
                    return;
                }
            }
        })
    };
    let cpu_start = Arc::new(std::sync::Mutex::new(None));
    let mut tasks = Vec::new();
    for (i, mut t) in terminals.into_iter().enumerate() {
        let http = http.clone();
        let setup = Setup {
            call_back_url: setup.call_back_url.clone(),
            endpoint: setup.endpoint.clone(),
            sandbox_url: setup.sandbox_url.clone(),
            merchant_id: setup.merchant_id.clone(),
            sign_key: setup.sign_key.clone(),
            operator_id: setup.operator_id.clone(),
            wallets: setup.wallets.clone(),
        };
        let key = key.clone();
        let mix = args.mix.clone();
        let done = done.clone();
        let cpu_start = cpu_start.clone();
        let pids = pids.to_vec();
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / args.terminals as f64));
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let (mut warm, mut helper_errors) = (0u64, 0u64);
            let mut next = start + offset.unwrap_or_default();
            loop {
                if let Some(iv) = interval {
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                    next += iv;
                }
                let began = Instant::now();
                if began >= end {
                    break;
                }
                if began >= measure_from {
                    let mut first = cpu_start.lock().unwrap_or_else(|e| e.into_inner());
                    if first.is_none() {
                        *first = Some(read_all(&pids));
                    }
                }
                let kind = mix.pick(&mut rand::thread_rng());
                let (sample, helper_failed) = one_request(&http, &setup, &key, &mut t, kind).await;
                helper_errors += u64::from(helper_failed);
                match sample {
                    Some(s) if began >= measure_from && Instant::now() <= end => {
                        done.fetch_add(1, Ordering::Relaxed);
                        samples.push(s);
                    }
                    Some(_) => warm += 1,
                    None => {}
                }
            }
            (samples, warm, helper_errors)
        }));
    }
    let mut figures = LoadFigures {
        samples: Vec::new(),
        measured: args.duration,
        warmup_requests: 0,
        helper_errors: 0,
        cpu_start: Snapshot::default(),
        cpu_end: Snapshot::default(),
    };
    for task in tasks {
        let (samples, warm, helper_errors) = task.await.context("a terminal failed")?;
        figures.samples.extend(samples);
        figures.warmup_requests += warm;
        figures.helper_errors += helper_errors;
    }
    figures.cpu_end = read_all(pids);
    figures.cpu_start = cpu_start
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |g| g.clone())
        .unwrap_or_default();
    let _ = ticker.await;
    progress.finish_and_clear();
    Ok(figures)
}
