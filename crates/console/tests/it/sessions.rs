//! Signing in: one answer for every wrong credential, the lockout, sessions that survive a
//! restart of the gateway (they live in the database), sign-out, TOTP, disabled users.

use qrgate_console::{ConsoleConfig, ConsoleState};
use qrgate_testkit::console::console_sign_in;
use qrgate_testkit::{backend_tests, TestDb};

use crate::world::{World, PASSWORD};

/// A new browser: its own cookies (or none), redirects not followed.
fn browser(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A sign-in from a new browser.
async fn post_sign_in(w: &World, email: &str, password: &str) -> reqwest::Response {
    console_sign_in(&browser(true), &w.url(""), email, password).await
}

/// Posts the sign-in form with `token` and the owner's right password.
async fn post_with_token(w: &World, http: &reqwest::Client, token: &str) -> reqwest::Response {
    http.post(w.url("/console/sign-in"))
        .form(&[
            ("csrf", token),
            ("email", w.a.owner.email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
}

async fn wrong_credentials_get_one_answer_and_five_lock_the_user(db: TestDb) {
    let w = World::start(db).await;
    let unknown = post_sign_in(&w, "nobody@x.example", PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    let unknown = unknown.text().await.unwrap();
    let wrong = post_sign_in(&w, w.a.owner.email.as_str(), "not the password").await;
    assert_eq!(wrong.status(), 401);
    assert!(unknown.contains("Email, password or code is wrong"));
    for _ in 0..4 {
        post_sign_in(&w, w.a.owner.email.as_str(), "not the password").await;
    }
    let locked = post_sign_in(&w, w.a.owner.email.as_str(), PASSWORD).await;
    assert_eq!(locked.status(), 429, "locked even with the right password");
    // Another user is not locked.
    assert_eq!(
        post_sign_in(&w, w.a.staff.email.as_str(), PASSWORD)
            .await
            .status(),
        303
    );
}

async fn a_session_lives_in_the_database_and_ends_at_sign_out(db: TestDb) {
    let w = World::start(db).await;
    let client = w.sign_in(w.a.owner.email.as_str()).await;
    // A second gateway process on the same database (another node, or after a restart)
    // knows the session.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = format!("http://{}", listener.local_addr().unwrap());
    let console = qrgate_console::router(ConsoleState::new(
        w.engine.clone(),
        ConsoleConfig::default(),
    ));
    let state = qrgate_http::AppState::new(w.engine.clone(), qrgate_http::HttpConfig::default());
    tokio::spawn(qrgate_http::serve_with(
        listener,
        state,
        console,
        std::future::pending(),
    ));
    let cookie_client = crate::world::Client {
        http: client.http.clone(),
        base: other,
        csrf: client.csrf.clone(),
    };
    let (status, body) = cookie_client
        .get(&format!("/console/m/{}", w.a.merchant.id))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = client.post("/console/sign-out", &[]).await;
    assert_eq!(status, 303);
    let (status, _) = client.get(&format!("/console/m/{}", w.a.merchant.id)).await;
    assert_eq!(status, 303, "signed out: back to sign-in");
}

async fn a_form_without_the_csrf_token_changes_nothing(db: TestDb) {
    let w = World::start(db).await;
    let mut client = w.sign_in(w.a.owner.email.as_str()).await;
    let before = w.audit_count().await;
    client.csrf = "forged".into();
    let (status, body) = client
        .post(
            &format!("/console/m/{}/settings/shops", w.a.merchant.id),
            &[("name", "Forged")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(w.audit_count().await, before);
    assert_eq!(w.engine.shops(&w.a.merchant.id).await.unwrap().len(), 1);
}

async fn two_factor_sign_in_asks_for_a_code_once_set_up(db: TestDb) {
    let w = World::start(db).await;
    let client = w.sign_in(w.a.owner.email.as_str()).await;
    let (status, page) = client.post("/console/account/2fa", &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("totp-secret"));
    assert!(page.contains("<svg"), "the secret as a QR for the app");
    let code = w
        .engine
        .console_totp_code(w.a.owner.id, w.engine.now())
        .await
        .unwrap();
    let (status, page) = client
        .post("/console/account/2fa/confirm", &[("code", &code)])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("totp-on"));
    // A new sign-in is pending until a code is given; the console stays closed meanwhile.
    let second = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = console_sign_in(&second, &w.url(""), w.a.owner.email.as_str(), PASSWORD).await;
    assert_eq!(r.headers()["location"], "/console/sign-in/code");
    let r = second
        .get(w.url(&format!("/console/m/{}", w.a.merchant.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/console/sign-in/code");
    let page = second
        .get(w.url("/console/sign-in/code"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::world::csrf_of(&page).unwrap();
    // The code already used to confirm is not accepted again.
    let r = second
        .post(w.url("/console/sign-in/code"))
        .form(&[("code", code.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The next step's code is.
    let next = w
        .engine
        .console_totp_code(w.a.owner.id, w.engine.now() + chrono::Duration::seconds(30))
        .await
        .unwrap();
    let r = second
        .post(w.url("/console/sign-in/code"))
        .form(&[("code", next.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = second
        .get(w.url(&format!("/console/m/{}", w.a.merchant.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Recovery: the provider turns it off.
    w.engine
        .reset_console_totp(&qrgate_engine::Actor::cli(), w.a.owner.id)
        .await
        .unwrap();
    assert_eq!(
        post_sign_in(&w, w.a.owner.email.as_str(), PASSWORD)
            .await
            .headers()["location"],
        "/console"
    );
}

async fn a_disabled_user_is_signed_out_at_once(db: TestDb) {
    let w = World::start(db).await;
    let staff = w.sign_in(w.a.staff.email.as_str()).await;
    let owner = w.sign_in(w.a.owner.email.as_str()).await;
    let (status, body) = owner
        .post(
            &format!(
                "/console/m/{}/users/{}/status",
                w.a.merchant.id, w.a.staff.id
            ),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = staff.get(&format!("/console/m/{}", w.a.merchant.id)).await;
    assert_eq!(status, 303);
    assert_eq!(
        post_sign_in(&w, w.a.staff.email.as_str(), PASSWORD)
            .await
            .status(),
        401
    );
    let audit = w
        .engine
        .store()
        .audit_entries(Some(&w.a.merchant.id), None, 10)
        .await
        .unwrap();
    assert_eq!(audit[0].action, "user.status");
    assert_eq!(audit[0].actor, w.a.owner.email.as_str());
    assert!(audit[0].after.as_deref().unwrap().contains("disabled"));
}

async fn a_sign_in_posted_from_another_site_opens_no_session(db: TestDb) {
    let w = World::start(db).await;
    // A page on another site can post the form, but cannot send (or read) the browser's
    // sign-in cookie: signing a victim in to the attacker's account is refused.
    let r = post_with_token(&w, &browser(false), &"0".repeat(64)).await;
    assert_eq!(r.status(), 403);
    let session_set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("qrgate_console="));
    assert!(!session_set, "no session cookie for a forged sign-in");
    assert!(r.text().await.unwrap().contains("csrf-error"));
    // The browser's own cookie with another token in the form: refused too.
    let own = browser(true);
    own.get(w.url("/console/sign-in")).send().await.unwrap();
    let r = post_with_token(&w, &own, &"f".repeat(64)).await;
    assert_eq!(r.status(), 403);
    // The same browser with its own token signs in.
    let r = console_sign_in(&own, &w.url(""), w.a.owner.email.as_str(), PASSWORD).await;
    assert_eq!(r.status(), 303);
}

async fn a_disabled_merchant_s_users_are_kept_out_and_its_refunds_refused(db: TestDb) {
    let w = World::start(db).await;
    let owner = w.sign_in(w.a.owner.email.as_str()).await;
    let home = format!("/console/m/{}", w.a.merchant.id);
    assert_eq!(owner.get(&home).await.0, 200);
    w.engine
        .set_merchant_status(&w.a.merchant.id, qrgate_domain::MerchantStatus::Disabled)
        .await
        .unwrap();
    // The open session ends at its next request, and the right password gets a clear answer.
    assert_eq!(owner.get(&home).await.0, 303);
    let r = post_sign_in(&w, w.a.owner.email.as_str(), PASSWORD).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("merchant is disabled"));
    // A wrong password still gets the one answer for every wrong credential.
    let r = post_sign_in(&w, w.a.owner.email.as_str(), "not the password").await;
    assert_eq!(r.status(), 401);
    // Another merchant's users are not touched.
    assert_eq!(
        post_sign_in(&w, w.b.owner.email.as_str(), PASSWORD)
            .await
            .status(),
        303
    );
    // The engine refuses a disabled merchant's refund by itself, whoever asks (here the
    // owner, whose session the console would already have ended).
    let owner_actor = qrgate_engine::Actor::console(w.a.owner.clone(), "127.0.0.1");
    let refused = w
        .engine
        .console_refund(
            &owner_actor,
            &w.a.merchant.id,
            &w.a.order_key,
            "C-DISABLED",
            qrgate_domain::Money::new(100, w.a.merchant.currency),
            "customer asked",
        )
        .await;
    assert!(
        matches!(
            &refused,
            Err(qrgate_engine::ConsoleError::Rule(
                qrgate_engine::ConsoleRule::MerchantDisabled
            ))
        ),
        "{refused:?}"
    );
    let order = w
        .engine
        .store()
        .order(&w.a.order_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.refunded.minor(), 0, "nothing refunded");
}

async fn the_sign_in_link_works_once(db: TestDb) {
    let w = World::start(db).await;
    let (_, link) = w
        .engine
        .create_console_user(
            &qrgate_engine::Actor::cli(),
            "new@a.example",
            qrgate_domain::ConsoleRole::MerchantStaff,
            Some(&w.a.merchant.id),
        )
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(w.url(&link.path())).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let short = http
        .post(w.url(&link.path()))
        .form(&[("password", "short"), ("again", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400);
    let ok = http
        .post(w.url(&link.path()))
        .form(&[("password", PASSWORD), ("again", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let again = http.get(w.url(&link.path())).send().await.unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(
        post_sign_in(&w, "new@a.example", PASSWORD).await.status(),
        303
    );
}

backend_tests!(
    wrong_credentials_get_one_answer_and_five_lock_the_user,
    a_session_lives_in_the_database_and_ends_at_sign_out,
    a_form_without_the_csrf_token_changes_nothing,
    two_factor_sign_in_asks_for_a_code_once_set_up,
    a_disabled_user_is_signed_out_at_once,
    a_sign_in_posted_from_another_site_opens_no_session,
    a_disabled_merchant_s_users_are_kept_out_and_its_refunds_refused,
    the_sign_in_link_works_once,
);
