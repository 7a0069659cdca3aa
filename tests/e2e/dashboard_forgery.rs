//! Requests another site can make a signed-in (or signing-in) browser send (issue 9 §5): a forged
//! `/login/callback` link shows none of its text and does not end the login in flight, and a
//! cross-origin `POST /logout` changes nothing.

use crate::browser::{Browser, Outcome, Page};
use crate::harness::env;
use crate::idp::new_user;

fn idp_origin() -> String {
    url::Url::parse(&env().idp_url).unwrap().origin().ascii_serialization()
}

/// Answers as they are: a refusal must not hide behind a followed redirect.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(std::time::Duration::from_secs(10)).build().unwrap()
}

fn set_cookies(page: &Page) -> Vec<String> {
    page.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

#[tokio::test]
async fn a_forged_callback_shows_nothing_of_its_own_and_leaves_the_login_in_flight() {
    let person = new_user("forged-callback", &[]).await;
    let server = &env().server_urls[0];
    let browser = Browser::new();
    // The person starts signing in: the browser holds the login cookie and is at the IdP.
    let Outcome::Stopped(authorize) = browser.start(&format!("{server}/login?provider=okta"), &idp_origin()).await.unwrap() else {
        panic!("/login did not send the browser to the IdP");
    };
    // Meanwhile they open a link someone sent them, with and without a made-up state.
    let lure = "Your+account+is+locked.+Call+%2B1-555-0100+now";
    for query in
        [format!("error=access_denied&error_description={lure}"), format!("state=forged&error=server_error&error_description={lure}")]
    {
        let page = browser.get(&format!("{server}/login/callback?{query}")).await.unwrap();
        assert_eq!(page.status, 400, "{}", page.text);
        assert!(page.text.contains("Login failed") && page.text.contains("state"), "{}", page.text);
        for needle in ["locked", "555-0100", "server_error", "access_denied"] {
            assert!(!page.text.contains(needle), "the page shows the link's text {needle:?}: {}", page.text);
        }
        assert!(
            !set_cookies(&page).iter().any(|c| c.starts_with("infra_login=")),
            "the login cookie is left alone: {:?}",
            set_cookies(&page)
        );
    }
    // The real login still completes.
    let callback =
        browser.login_at_idp(authorize.as_str(), &person.email, &person.password, &format!("{server}/login/callback")).await.unwrap();
    let landed = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(landed.status, 303, "the login in flight was ended: {}", landed.text);
    let home = browser.get(&format!("{server}/")).await.unwrap();
    assert!(home.text.contains(&format!("<span id=\"user\">{}</span>", person.email)), "{}", home.text);
}

#[tokio::test]
async fn a_cross_origin_logout_is_refused_and_the_session_survives() {
    let person = new_user("csrf-logout", &[]).await;
    let server = &env().server_urls[0];
    let browser = Browser::new();
    let callback = browser
        .login_at_idp(&format!("{server}/login?provider=okta"), &person.email, &person.password, &format!("{server}/login/callback"))
        .await
        .unwrap();
    let landed = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text);
    let session = set_cookies(&landed)
        .iter()
        .find_map(|c| c.strip_prefix("infra_session=").map(|v| v.split(';').next().unwrap().to_string()))
        .expect("a session cookie");
    let cookie = format!("infra_session={session}");
    let whoami = || async { http().get(format!("{server}/api/whoami")).bearer_auth(&session).send().await.unwrap().status().as_u16() };
    // A page on another site (or a sibling site, or one that hides its origin) posts the form.
    for (origin, referer) in
        [(Some("https://evil.example"), None), (Some("null"), None), (None, Some("https://evil.example/page")), (None, None)]
    {
        let mut req = http().post(format!("{server}/logout")).header("cookie", &cookie).form(&[("x", "y")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{origin:?} {referer:?}");
        assert!(resp.headers().get_all("set-cookie").iter().next().is_none(), "the cookie is kept");
        assert_eq!(whoami().await, 200, "the session survives {origin:?} {referer:?}");
        // The API's logout, with the cookie instead of a bearer token, is held to the same rule.
        let mut api = http().post(format!("{server}/api/logout")).header("cookie", &cookie);
        if let Some(o) = origin {
            api = api.header("origin", o);
        }
        assert_eq!(api.send().await.unwrap().status().as_u16(), 403);
        assert_eq!(whoami().await, 200);
    }
    // From this origin but without the form's CSRF token, or with another session's: refused too.
    let origin = url::Url::parse(server).unwrap().origin().ascii_serialization();
    for form in [vec![], vec![("csrf", "x".repeat(43))]] {
        let resp =
            http().post(format!("{server}/logout")).header("cookie", &cookie).header("origin", &origin).form(&form).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{form:?}");
        assert!(resp.text().await.unwrap().contains("CSRF token"));
        assert_eq!(whoami().await, 200, "the session survives {form:?}");
    }
    // From the dashboard's own page, with the token the page carries, signing out works.
    let home = http().get(format!("{server}/")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let token =
        home.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("the sign-out form's token").to_string();
    let resp = http()
        .post(format!("{server}/logout"))
        .header("cookie", &cookie)
        .header("origin", origin)
        .form(&[("csrf", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert!(
        resp.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("infra_session=;")),
        "{:?}",
        resp.headers()
    );
    assert_eq!(whoami().await, 401);
}
