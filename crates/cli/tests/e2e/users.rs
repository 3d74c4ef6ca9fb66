//! `qrgate user`: the first provider admin is created with the CLI, their one-time link sets
//! the password on the running gateway's console, and the CLI's recovery commands take effect.

use serde_json::Value;

use crate::Install;

async fn the_first_admin_signs_in_through_the_printed_link(install: Install) {
    let out = install.ok(&[
        "user",
        "add",
        "--role",
        "provider-admin",
        "--email",
        "Ops@Provider.example",
        "--json",
    ]);
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["email"], "ops@provider.example");
    assert_eq!(created["role"], "provider_admin");
    let link = created["sign_in_link"].as_str().unwrap().to_owned();
    let path = &link[link.find("/console/welcome/").unwrap()..];
    // Bad input changes nothing and says why.
    let bad = install.run(&[
        "user",
        "add",
        "--role",
        "merchant-owner",
        "--email",
        "x@y.example",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("merchant"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = install.run(&["user", "add", "--role", "boss", "--email", "x@y.example"]);
    assert!(!bad.status.success());

    let server = install.serve(&[]);
    let base = server.endpoint().replace("/processV2", "");
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{base}{path}"))
        .form(&[
            ("password", "a long enough password"),
            ("again", "a long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = qrgate_testkit::console::console_sign_in(
        &http,
        &base,
        "ops@provider.example",
        "a long enough password",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("HttpOnly"));
    // The console's pages carry their own policy: no script at all.
    let page = http
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self'") && !csp.contains("script-src"),
        "{csp}"
    );

    install.ok(&["user", "disable", "--email", "ops@provider.example"]);
    let r = qrgate_testkit::console::console_sign_in(
        &http,
        &base,
        "ops@provider.example",
        "a long enough password",
    )
    .await;
    assert_eq!(
        r.status(),
        401,
        "disabled from the CLI, refused by the running gateway"
    );
    let list: Value = serde_json::from_str(&install.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(list[0]["status"], "disabled");
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_signs_in_through_the_printed_link_on_sqlite() {
    the_first_admin_signs_in_through_the_printed_link(Install::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_admin_signs_in_through_the_printed_link_on_postgres() {
    if let Some(install) =
        Install::postgres("the_first_admin_signs_in_through_the_printed_link_on_postgres").await
    {
        the_first_admin_signs_in_through_the_printed_link(install).await;
    }
}
