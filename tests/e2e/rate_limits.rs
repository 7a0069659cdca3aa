//! Unauthenticated endpoints that cause work elsewhere are rate limited per client (and failed
//! SCIM authentications per key id too), answering 429 with Retry-After. The shared replicas of
//! the suite run with high limits (the suite logs in from 127.0.0.1 all the time); these tests
//! start a server of their own with the defaults, behind one "proxy" so that X-Forwarded-For
//! tells clients apart.

use serde_json::json;

use crate::harness::*;

const PORT: u16 = 18097;

async fn own_server() -> std::process::Child {
    let state = std::env::var("INFRA_STATE_DIR").unwrap();
    extra_server(PORT, &["--trusted-proxy-hops=1"], &[("INFRA_EXTRA_CA_FILE", format!("{state}/idp/ca.crt"))], Some("server-rate-limits"))
        .await
}

fn base() -> String {
    format!("http://127.0.0.1:{PORT}")
}

/// Status codes of `n` requests made by `make`, and whether every 429 had Retry-After.
async fn statuses(n: usize, make: impl Fn(usize) -> reqwest::RequestBuilder) -> (Vec<u16>, bool) {
    let mut out = vec![];
    let mut retry_after = true;
    for i in 0..n {
        let resp = make(i).send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 429 {
            retry_after &=
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1);
        }
        out.push(status);
    }
    (out, retry_after)
}

#[tokio::test]
async fn logins_whoami_and_failed_scim_authentications_are_rate_limited() {
    let p = ScimProvider::new("limits").await;
    let mut server = own_server().await;
    let client = http();

    // POST /api/login: 30 a minute with a burst of 10, per client. A bad request still counts (the
    // limit is checked before anything else), so no provider is bothered here.
    let login = |ip: &'static str| {
        let c = client.clone();
        move |_| c.post(format!("{}/api/login", base())).header("x-forwarded-for", ip).json(&json!({"provider": "okta"}))
    };
    let (codes, retry_after) = statuses(15, login("203.0.113.1")).await;
    assert!(codes[..10].iter().all(|&c| c == 400), "{codes:?}");
    // (A token may refill while the requests run: 1 every 2 s.)
    assert!(codes[12..].iter().all(|&c| c == 429), "{codes:?}");
    assert!(retry_after);
    // Another client is not affected; nor is a client that forges X-Forwarded-For entries to
    // the left of what the trusted proxy appended.
    assert_eq!(statuses(1, login("203.0.113.2")).await.0, vec![400]);
    let forged = client
        .post(format!("{}/api/login", base()))
        .header("x-forwarded-for", "198.51.100.9, 203.0.113.1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 429);

    // whoami: 300 a minute, burst 100.
    let (codes, _) = statuses(110, |_| client.get(format!("{}/api/whoami", base())).header("x-forwarded-for", "203.0.113.3")).await;
    assert!(codes[..100].iter().all(|&c| c == 401), "{codes:?}");
    // 5 tokens a second refill while the requests run.
    assert!(codes[100..].iter().filter(|&&c| c == 429).count() >= 5, "{codes:?}");

    // SCIM: failed authentications per client...
    let scim = |ip: String, token: String| {
        let c = client.clone();
        move |_| c.get(format!("{}/api/scim/v2/Users", base())).header("x-forwarded-for", ip.clone()).bearer_auth(token.clone())
    };
    let wrong = infra::keys::generate().unwrap().token;
    let (codes, retry_after) = statuses(8, scim("203.0.113.4".into(), wrong)).await;
    assert!(codes[..6].iter().all(|&c| c == 401) && codes[7] == 429, "{codes:?}");
    assert!(retry_after);
    // ...and per key id: wrong secrets for the real key's id, from many addresses.
    let id = infra::keys::parse_id(&p.token).unwrap().to_string();
    let guess = format!("{}{id}_{}", infra::keys::SCIM_KEY_PREFIX, "x".repeat(43));
    let guesses: Vec<u16> = futures_codes(&client, &guess, 8).await;
    assert!(guesses[..6].iter().all(|&c| c == 401) && guesses[7] == 429, "{guesses:?}");
    // The real key keeps working, from the limited client and the guessed key id alike.
    let (codes, _) = statuses(3, scim("203.0.113.4".into(), p.token.clone())).await;
    assert_eq!(codes, vec![200, 200, 200]);

    server.kill().unwrap();
    server.wait().unwrap();
}

/// `n` guesses with `token`, each from an address of its own.
async fn futures_codes(client: &reqwest::Client, token: &str, n: usize) -> Vec<u16> {
    let mut out = vec![];
    for i in 0..n {
        let resp = client
            .get(format!("{}/api/scim/v2/Users", base()))
            .header("x-forwarded-for", format!("198.51.100.{}", 10 + i))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        out.push(resp.status().as_u16());
    }
    out
}
