//! Delivering notifications to merchants with each wallet's retry schedule and
//! acknowledgement rule; faults can duplicate, reorder or forge them.

use chrono::Duration;

use crate::state::rules;
use crate::Sandbox;

/// How many notifications one tick delivers at most (bounded work per tick).
const MAX_PER_TICK: usize = 32;

struct Due {
    id: u64,
    url: String,
    content_type: String,
    body: Vec<u8>,
    copies: usize,
}

/// Delivers every notification that is due, recording each attempt.
pub(crate) async fn deliver_due(sandbox: &Sandbox) {
    let mut due: Vec<Due> = Vec::new();
    let mut reverse_order = false;
    let picked: Vec<(
        u64,
        crate::model::Wallet,
        String,
        String,
        String,
        bool,
        bool,
    )> = sandbox.with(|state, _, now| {
        let mut out = Vec::new();
        for n in state
            .notifications
            .iter()
            .filter(|n| !n.delivered && n.next_at <= now)
            .take(MAX_PER_TICK)
        {
            let faults = state.faults.get(&n.wallet).cloned().unwrap_or_default();
            out.push((
                n.id,
                n.wallet,
                n.merchant.clone(),
                n.out_trade_no.clone(),
                n.url.clone(),
                faults.duplicate_notifications,
                faults.forged_notifications,
            ));
            reverse_order |= faults.out_of_order_notifications;
        }
        out
    });
    for (id, wallet, merchant, out_trade_no, url, duplicate, forged) in picked {
        let trade =
            sandbox.with(|state, _, now| state.trade(wallet, &merchant, &out_trade_no, now));
        let built = sandbox
            .module(wallet)
            .zip(trade)
            .and_then(|(module, trade)| module.notification(sandbox, &trade, forged));
        let Some((content_type, body)) = built else {
            // Nothing can be sent for it: park it so it does not take a slot every tick.
            sandbox.with(|state, _, now| {
                if let Some(n) = state.notifications.iter_mut().find(|n| n.id == id) {
                    n.next_at = now + Duration::days(3650);
                    n.log
                        .push(format!("{} cannot be built; given up", now.to_rfc3339()));
                }
            });
            continue;
        };
        due.push(Due {
            id,
            url,
            content_type,
            body,
            copies: if duplicate { 2 } else { 1 },
        });
    }
    if reverse_order {
        due.reverse();
    }
    for d in due {
        let mut acknowledged = false;
        let mut log = Vec::new();
        for _ in 0..d.copies {
            let result = sandbox
                .inner
                .http
                .post(&d.url)
                .header(reqwest::header::CONTENT_TYPE, d.content_type.clone())
                .body(d.body.clone())
                .send()
                .await;
            match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let wallet_ok = sandbox
                        .with(|s, _, _| {
                            s.notifications
                                .iter()
                                .find(|n| n.id == d.id)
                                .map(|n| n.wallet)
                        })
                        .and_then(|w| sandbox.module(w))
                        .is_some_and(|m| m.acknowledged(status, &text));
                    acknowledged |= wallet_ok;
                    let excerpt: String = text.chars().take(80).collect();
                    log.push(format!("HTTP {status} {excerpt:?}"));
                }
                Err(e) => log.push(format!("failed: {e}")),
            }
        }
        sandbox.with(|state, _, now| {
            let Some(n) = state.notifications.iter_mut().find(|n| n.id == d.id) else {
                return;
            };
            n.attempts += 1;
            n.log
                .extend(log.into_iter().map(|l| format!("{} {l}", now.to_rfc3339())));
            if acknowledged {
                n.delivered = true;
                return;
            }
            let schedule = rules(n.wallet).notify_schedule;
            match usize::try_from(n.attempts)
                .ok()
                .and_then(|a| schedule.get(a - 1))
            {
                Some(gap) => n.next_at = now + Duration::seconds(*gap),
                // The schedule is exhausted: the wallet gives up, as the real ones do.
                None => n.delivered = false,
            }
            if usize::try_from(n.attempts).is_ok_and(|a| a > schedule.len()) {
                n.next_at = now + Duration::days(3650);
            }
        });
    }
}
