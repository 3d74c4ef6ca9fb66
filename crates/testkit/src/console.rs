//! Signing in to the console as a browser does: fetch the sign-in page (which sets the
//! form's double-submit cookie), then post the form with its token.

/// Posts the console's sign-in form for `email`. `http` must keep cookies
/// (`cookie_store(true)`), as a browser does; the answer is returned as it came (303 when
/// signed in), redirects not followed if `http` follows none.
pub async fn console_sign_in(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let page = http
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .expect("the console's sign-in page")
        .text()
        .await
        .expect("the sign-in page's body");
    let token = sign_in_token(&page).expect("a token in the sign-in form");
    http.post(format!("{base}/console/sign-in"))
        .form(&[("csrf", token), ("email", email), ("password", password)])
        .send()
        .await
        .expect("the sign-in form's answer")
}

/// The hidden `csrf` field of a console page.
pub fn sign_in_token(html: &str) -> Option<&str> {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker)? + marker.len();
    let len = html[at..].find('"')?;
    Some(&html[at..at + len])
}
