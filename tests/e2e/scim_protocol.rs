//! RFC 7643/7644 over the wire, beyond any one client's dialect: errors, discovery, the filter
//! grammar, projections, sorting, search, versions, atomicity, mutability, tenant isolation and
//! consistency between the server replicas.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use reqwest::Method;

use crate::harness::*;

// ---- fixtures -----------------------------------------------------------------------------------

/// Three users with attributes to filter and sort on, by short name.
struct People {
    ids: HashMap<&'static str, String>,
}

impl People {
    async fn create(scim: &Scim, provider: &str) -> Self {
        let users = [
            (
                "alice",
                json!({
                    "schemas": [USER_SCHEMA, ENTERPRISE_USER],
                    "userName": format!("alice@{provider}.example.com"),
                    "externalId": "ext-alice",
                    // Lower case on purpose: displayName is caseExact=false, so it sorts first.
                    "displayName": "alice smith",
                    "title": "Engineer",
                    "userType": "Employee",
                    "name": {"givenName": "Alice", "familyName": "Smith"},
                    // The primary email is the second one: sorting by emails uses the primary.
                    "emails": [{"type": "home", "value": "zed@home.org"}, {"type": "work", "value": "alice@example.com", "primary": true}],
                    ENTERPRISE_USER: {"employeeNumber": "100", "department": "R&D"},
                    "active": true
                }),
            ),
            (
                "bob",
                json!({
                    "schemas": [USER_SCHEMA, ENTERPRISE_USER],
                    "userName": format!("bob@{provider}.example.com"),
                    "externalId": "ext-bob",
                    "displayName": "Bob Jones",
                    "title": "Manager",
                    "name": {"givenName": "Bob", "familyName": "Jones"},
                    "emails": [{"type": "work", "value": "bob@example.com", "primary": true}],
                    ENTERPRISE_USER: {"employeeNumber": "200"},
                    "active": false
                }),
            ),
            (
                "carol",
                json!({
                    "schemas": [USER_SCHEMA, ENTERPRISE_USER],
                    "userName": format!("carol@{provider}.example.com"),
                    "externalId": "ext-carol",
                    "displayName": "Carol Smith",
                    "userType": "Contractor",
                    "name": {"givenName": "Carol", "familyName": "Smith"},
                    "emails": [{"type": "work", "value": "carol@other.org", "primary": true}],
                    ENTERPRISE_USER: {"employeeNumber": "300", "department": "Sales"},
                    "active": true
                }),
            ),
        ];
        let mut ids = HashMap::new();
        for (short, body) in users {
            let r = scim.post("/Users", &body).await;
            ids.insert(short, r.expect(201)["id"].as_str().unwrap().to_string());
        }
        Self { ids }
    }

    fn id(&self, short: &str) -> &str {
        &self.ids[short]
    }

    /// The short names of a ListResponse's resources, in order.
    fn names(&self, r: &Resp) -> Vec<&'static str> {
        r.ids()
            .iter()
            .map(|id| *self.ids.iter().find(|(_, v)| *v == id).unwrap_or_else(|| panic!("unknown id {id} in {}", r.text)).0)
            .collect()
    }

    fn set(&self, r: &Resp) -> BTreeSet<&'static str> {
        assert_eq!(r.status, 200, "{}", r.text);
        self.names(r).into_iter().collect()
    }
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

// ---- errors ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_ids_and_paths_are_404_error_bodies() {
    let p = ScimProvider::new("proto-404").await;
    let scim = p.client(0);
    let id = scim.create_user(&format!("known@{}.example.com", p.name)).await;
    let missing = "2819c223-7f76-453a-919d-413861904646";
    for path in [format!("/Users/{missing}"), format!("/Groups/{missing}"), format!("/Groups/{id}")] {
        scim.get(&path).await.expect_error(404, None);
        scim.put(&path, &json!({"schemas": [USER_SCHEMA], "userName": "x", "displayName": "x"})).await.expect_error(404, None);
        scim.patch(&path, &patch_op(json!([{"op": "replace", "path": "displayName", "value": "x"}]))).await.expect_error(404, None);
        scim.delete(&path).await.expect_error(404, None);
    }
    let mut wrong = vec![];
    for path in ["/NoSuchThing", "/Users/extra/segments", &format!("/Users/{id}/groups"), "/ServiceProviderConfigs", "", "/"] {
        let r = scim.get(path).await;
        if (r.status, r.header("content-type"), &r.body["status"]) != (404, Some(SCIM_JSON), &json!("404")) {
            wrong.push(format!("GET {}{path}: {} {:?} {:?}", scim.base, r.status, r.header("content-type"), r.text));
        }
    }
    assert!(wrong.is_empty(), "unknown paths without a SCIM 404:\n{}", wrong.join("\n"));
    p.remove();
}

#[tokio::test]
async fn write_methods_on_discovery_endpoints_are_405_error_bodies() {
    let p = ScimProvider::new("proto-405").await;
    let scim = p.client(0);
    let paths = ["/ServiceProviderConfig", "/Schemas", &format!("/Schemas/{USER_SCHEMA}"), "/ResourceTypes", "/ResourceTypes/User"];
    for path in paths {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let r = scim.send(method.clone(), path, Some(b"{}".to_vec()), &[]).await;
            assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
            r.expect_error(405, None);
        }
        scim.get(path).await.expect(200);
    }
    // Collections and resources refuse the methods they do not have, too.
    scim.send(Method::DELETE, "/Users", None, &[]).await.expect_error(405, None);
    scim.send(Method::PUT, "/Groups", Some(b"{}".to_vec()), &[]).await.expect_error(405, None);
    scim.send(Method::POST, "/Users/2819c223-7f76-453a-919d-413861904646", Some(b"{}".to_vec()), &[]).await.expect_error(405, None);
    scim.send(Method::GET, "/Users/.search", None, &[]).await.expect_error(405, None);
    p.remove();
}

/// RFC 9110 §15.5.6: "The origin server MUST generate an Allow header field in a 405 response
/// containing a list of the target resource's currently supported methods."
#[tokio::test]
async fn method_not_allowed_answers_carry_an_allow_header() {
    let p = ScimProvider::new("proto-allow").await;
    let scim = p.client(0);
    let r = scim.send(Method::POST, "/ServiceProviderConfig", Some(b"{}".to_vec()), &[]).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "no Allow header: {:?}", r.headers);
    let r = scim.send(Method::DELETE, "/Users", None, &[]).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some_and(|a| a.contains("GET") && a.contains("POST")), "no Allow header: {:?}", r.headers);
    p.remove();
}

#[tokio::test]
async fn malformed_bodies_are_400_invalid_syntax() {
    let p = ScimProvider::new("proto-syntax").await;
    let scim = p.client(0);
    let id = scim.create_user(&format!("syntax@{}.example.com", p.name)).await;
    let user = format!("/Users/{id}");
    for body in ["{\"userName\": ", "not json", "", "[]", "\"a string\"", "{\"userName\": \"x\",}"] {
        let (shown, body) = (body, body.as_bytes());
        for (method, path) in [
            (Method::POST, "/Users"),
            (Method::POST, "/Groups"),
            (Method::PUT, user.as_str()),
            (Method::PATCH, user.as_str()),
            (Method::POST, "/.search"),
            (Method::POST, "/Users/.search"),
        ] {
            let r = scim.send(method.clone(), path, Some(body.to_vec()), &[]).await;
            assert_eq!(r.status, 400, "{method} {path} {shown:?}: {}", r.text);
            r.expect_error(400, Some("invalidSyntax"));
        }
    }
    // A PATCH without Operations, or with an unknown op, does not have the PatchOp structure.
    scim.patch(&user, &json!({"schemas": [PATCH_OP]})).await.expect_error(400, Some("invalidSyntax"));
    let r = scim.patch(&user, &patch_op(json!([{"op": "frobnicate", "path": "displayName", "value": "x"}]))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    r.expect_error(400, None);
    // A resource without its required userName.
    scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "displayName": "nobody"})).await.expect_error(400, Some("invalidValue"));
    p.remove();
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let p = ScimProvider::new("proto-413").await;
    let scim = p.client(0);
    let big =
        json!({"schemas": [USER_SCHEMA], "userName": format!("big@{}.example.com", p.name), "displayName": "x".repeat(1024 * 1024 + 1)});
    let r = scim.post("/Users", &big).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(p.objects("users").is_empty());
    // The same without a Content-Length (chunked), where the limit is found while reading.
    let status = chunked_post(&format!("{}/Users", scim.base), &scim.auth, big.to_string().as_bytes()).await;
    // The server may also close the connection once the limit is exceeded (None).
    assert!(status.is_none_or(|s| s == 413), "chunked oversized body: {status:?}");
    assert!(p.objects("users").is_empty());
    p.remove();
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a plain socket; the response status, if any.
async fn chunked_post(url: &str, auth: &str, body: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let url = url::Url::parse(url).unwrap();
    let (host, port, path) = (url.host_str().unwrap().to_string(), url.port().unwrap(), url.path().to_string());
    let (auth, body) = (auth.to_string(), body.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect((host.as_str(), port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).ok()?;
        for chunk in body.chunks(64 * 1024) {
            if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).and_then(|_| s.write_all(chunk)).and_then(|_| s.write_all(b"\r\n")).is_err() {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
        let mut answer = vec![0u8; 512];
        let n = s.read(&mut answer).ok()?;
        let line = String::from_utf8_lossy(&answer[..n]).lines().next()?.to_string();
        line.split_whitespace().nth(1)?.parse().ok()
    })
    .await
    .unwrap()
}

/// RFC 7644 §3.12: every error is an Error body, 413 included ("if possible" for the limit).
#[tokio::test]
async fn oversized_bodies_get_an_rfc7644_error_body() {
    let p = ScimProvider::new("proto-413b").await;
    let scim = p.client(0);
    let big = json!({"schemas": [USER_SCHEMA], "userName": "big@example.com", "displayName": "x".repeat(1024 * 1024 + 1)});
    scim.post("/Users", &big).await.expect_error(413, None);
    p.remove();
}

// ---- queries --------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_filters_are_400_invalid_filter_and_never_500() {
    let p = ScimProvider::new("proto-badfilter").await;
    let scim = p.client(0);
    scim.create_user(&format!("someone@{}.example.com", p.name)).await;
    let deep = format!("{}userName eq \"x\"{}", "(".repeat(1000), ")".repeat(1000));
    let long_or = (0..1000).map(|i| format!("userName eq \"u{i}\"")).collect::<Vec<_>>().join(" or ");
    let garbage = [
        "userName eq",
        "userName",
        "eq \"x\"",
        "userName xx \"x\"",
        "userName eq \"x\" and",
        "userName eq \"x\" or or userName eq \"y\"",
        "(userName eq \"x\"",
        "userName eq \"x\")",
        "emails[type eq \"work\"",
        "emails[type eq \"work\"]]",
        "emails[type eq \"work\"].",
        "userName eq \"unterminated",
        "userName eq 'single'",
        "userName eq x",
        "userName pr \"x\"",
        "noSuchAttribute eq \"x\"",
        "name.noSuchSub eq \"x\"",
        "emails[noSuchSub eq \"x\"]",
        "userName[value eq \"x\"]",
        "emails[type eq \"work\" and value[x eq \"y\"]]",
        "()",
        ")(",
        "[",
        "\"",
        "and",
        "not",
        "userName eq \"x\" userName eq \"y\"",
        &deep,
        &long_or,
    ];
    for f in garbage {
        let r = scim.filter("Users", f).await;
        assert_eq!(r.status, 400, "filter {:?}: {}", &f[..f.len().min(80)], r.text);
        r.expect_error(400, Some("invalidFilter"));
        // The same filter in a search request body.
        let r =
            scim.post("/Users/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f})).await;
        r.expect_error(400, Some("invalidFilter"));
    }
    // Odd but harmless inputs: whatever the answer, never a server error.
    for f in [
        "userName eq \"\\u0000\"",
        "userName eq \"\u{1F600}\"",
        "userName eq 1e999",
        "meta.created gt \"not a date\"",
        "active eq \"yes\"",
        "userName eq null",
        "%",
        "userName eq \"a\\\"b\"",
    ] {
        let r = scim.filter("Users", f).await;
        assert!(r.status == 200 || r.status == 400, "filter {f:?}: {} {}", r.status, r.text);
        if r.status == 400 {
            r.expect_error(400, None);
        }
    }
    p.remove();
}

#[tokio::test]
async fn paging_parameters_follow_rfc7644() {
    let p = ScimProvider::new("proto-paging").await;
    let scim = p.client(0);
    for i in 0..5 {
        scim.create_user(&format!("page-{i}@{}.example.com", p.name)).await;
    }
    let page = |q: &'static str| {
        let scim = scim.clone();
        async move { scim.get(&format!("/Users?{q}")).await }
    };
    // count=0: only the total.
    let r = page("count=0").await;
    assert_eq!(
        (r.body["totalResults"].clone(), r.body["itemsPerPage"].clone(), r.body["Resources"].clone()),
        (json!(5), json!(0), json!([])),
        "{}",
        r.text
    );
    // "A negative value SHALL be interpreted as 0."
    let r = page("count=-3").await;
    assert_eq!(r.expect(200)["Resources"], json!([]), "{}", r.text);
    // "A value less than 1 SHALL be interpreted as 1."
    let r = page("startIndex=0&count=2").await;
    assert_eq!(r.expect(200)["startIndex"], json!(1));
    assert_eq!(r.ids(), page("startIndex=1&count=2").await.ids());
    let r = page("startIndex=-7&count=2").await;
    assert_eq!(r.expect(200)["startIndex"], json!(1));
    // The middle and the end.
    let all = page("").await.ids();
    assert_eq!(all.len(), 5);
    assert_eq!(page("startIndex=2&count=2").await.ids(), all[1..3].to_vec());
    let r = page("startIndex=5&count=10").await;
    assert_eq!(r.ids(), all[4..].to_vec());
    assert_eq!(r.body["itemsPerPage"], json!(1));
    // Parameter names in any case (clients differ).
    assert_eq!(page("STARTINDEX=2&COUNT=1").await.ids(), all[1..2].to_vec());
    // Not a number: a client error, never a server error.
    page("count=lots").await.expect_error(400, None);
    page("startIndex=first").await.expect_error(400, None);
    p.remove();
}

#[tokio::test]
async fn filters_cover_the_rfc7644_grammar() {
    let p = ScimProvider::new("proto-filter").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let q = |f: String| {
        let scim = scim.clone();
        async move { scim.filter("Users", &f).await }
    };
    let pn = &p.name;
    let cases: Vec<(String, Vec<&str>)> = vec![
        // eq is case-insensitive on userName (caseExact=false), and so are names and operators.
        (format!("userName eq \"ALICE@{}.EXAMPLE.COM\"", pn.to_uppercase()), vec!["alice"]),
        (format!("USERNAME EQ \"bob@{pn}.example.com\""), vec!["bob"]),
        (format!("userName ne \"alice@{pn}.example.com\""), vec!["bob", "carol"]),
        ("displayName co \"SMITH\"".into(), vec!["alice", "carol"]),
        ("userName sw \"b\"".into(), vec!["bob"]),
        ("displayName ew \"jones\"".into(), vec!["bob"]),
        (format!("userName ew \"@{pn}.example.com\""), vec!["alice", "bob", "carol"]),
        ("title pr".into(), vec!["alice", "bob"]),
        ("not (title pr)".into(), vec!["carol"]),
        ("userType pr and not (userType eq \"contractor\")".into(), vec!["alice"]),
        // Ordering on strings and on dates.
        (format!("{ENTERPRISE_USER}:employeeNumber gt \"150\""), vec!["bob", "carol"]),
        (format!("{ENTERPRISE_USER}:employeeNumber ge \"200\""), vec!["bob", "carol"]),
        (format!("{ENTERPRISE_USER}:employeeNumber lt \"200\""), vec!["alice"]),
        (format!("{ENTERPRISE_USER}:employeeNumber le \"200\""), vec!["alice", "bob"]),
        ("meta.created gt \"2000-01-01T00:00:00Z\"".into(), vec!["alice", "bob", "carol"]),
        ("meta.lastModified lt \"2000-01-01T00:00:00Z\"".into(), vec![]),
        // Booleans.
        ("active eq false".into(), vec!["bob"]),
        ("active eq true".into(), vec!["alice", "carol"]),
        // Logic and grouping.
        ("title eq \"Engineer\" or title eq \"Manager\"".into(), vec!["alice", "bob"]),
        ("name.familyName eq \"Smith\" and active eq true".into(), vec!["alice", "carol"]),
        ("(name.familyName eq \"Smith\" or title eq \"Manager\") and not (userType eq \"Contractor\")".into(), vec!["alice", "bob"]),
        ("name.familyName eq \"Smith\" and (title eq \"Engineer\" or userType eq \"Contractor\")".into(), vec!["alice", "carol"]),
        ("title eq \"Manager\" or name.givenName eq \"Carol\" and active eq true".into(), vec!["bob", "carol"]),
        // Value paths and sub-attributes of multi-valued attributes.
        ("emails[type eq \"work\" and value co \"@example.com\"]".into(), vec!["alice", "bob"]),
        ("emails[type eq \"home\"]".into(), vec!["alice"]),
        ("emails[type eq \"home\" and value ew \"other.org\"]".into(), vec![]),
        ("emails.value ew \"other.org\"".into(), vec!["carol"]),
        ("emails co \"home.org\"".into(), vec!["alice"]),
        ("emails[not (type eq \"work\")]".into(), vec!["alice"]),
        // Schema-URN-qualified attribute paths, core and extension.
        (format!("{USER_SCHEMA}:userName eq \"bob@{pn}.example.com\""), vec!["bob"]),
        (format!("{USER_SCHEMA}:name.givenName eq \"carol\""), vec!["carol"]),
        (format!("{ENTERPRISE_USER}:department eq \"r&d\""), vec!["alice"]),
        (format!("{ENTERPRISE_USER}:department pr"), vec!["alice", "carol"]),
        // Identifiers.
        (format!("id eq \"{}\"", people.id("carol")), vec!["carol"]),
        ("externalId eq \"ext-bob\"".into(), vec!["bob"]),
        (format!("id eq \"{}\" or externalId eq \"ext-carol\"", people.id("alice")), vec!["alice", "carol"]),
    ];
    let mut failures = vec![];
    for (f, want) in &cases {
        let r = q(f.clone()).await;
        if r.status != 200 {
            failures.push(format!("{f}: {} {}", r.status, r.text));
            continue;
        }
        let got = people.set(&r);
        if got != set(want) {
            failures.push(format!("{f}: got {got:?}, want {want:?}"));
        }
        if r.body["totalResults"] != json!(want.len()) {
            failures.push(format!("{f}: totalResults {} for {} results", r.body["totalResults"], want.len()));
        }
    }
    assert!(failures.is_empty(), "filters that answered wrongly:\n{}", failures.join("\n"));
    p.remove();
}

#[tokio::test]
async fn group_filters_on_display_name_and_members() {
    let p = ScimProvider::new("proto-gfilter").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let mut groups = HashMap::new();
    for (name, members) in [("Engineering", vec!["alice", "bob"]), ("Sales", vec!["carol"]), ("Everyone Else", vec![])] {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": people.id(m)})).collect();
        let r = scim
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_SCHEMA], "displayName": name, "externalId": format!("g-{name}"), "members": members}),
            )
            .await;
        groups.insert(r.expect(201)["id"].as_str().unwrap().to_string(), name);
    }
    let names = |r: &Resp| -> BTreeSet<&str> {
        assert_eq!(r.status, 200, "{}", r.text);
        r.ids().iter().map(|id| groups[id]).collect()
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("displayName eq \"engineering\"".into(), vec!["Engineering"]),
        ("displayName sw \"E\"".into(), vec!["Engineering", "Everyone Else"]),
        (format!("members[value eq \"{}\"]", people.id("carol")), vec!["Sales"]),
        (format!("members.value eq \"{}\"", people.id("bob")), vec!["Engineering"]),
        (format!("members eq \"{}\"", people.id("alice")), vec!["Engineering"]),
        ("members pr".into(), vec!["Engineering", "Sales"]),
        ("not (members pr)".into(), vec!["Everyone Else"]),
        ("externalId eq \"g-Sales\"".into(), vec!["Sales"]),
        (format!("{GROUP_SCHEMA}:displayName co \"else\""), vec!["Everyone Else"]),
    ];
    for (f, want) in cases {
        let got = names(&scim.filter("Groups", &f).await);
        assert_eq!(got, want.into_iter().collect::<BTreeSet<_>>(), "{f}");
    }
    // A user-only attribute names nothing a group has.
    scim.filter("Groups", "userName eq \"x\"").await.expect_error(400, Some("invalidFilter"));
    p.remove();
}

#[tokio::test]
async fn attributes_and_excluded_attributes_shape_every_read() {
    let p = ScimProvider::new("proto-attrs").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let alice = format!("/Users/{}", people.id("alice"));
    let get = |q: String| {
        let (scim, alice) = (scim.clone(), alice.clone());
        async move { scim.get(&format!("{alice}?{q}")).await.expect(200).clone() }
    };

    let u = get("attributes=userName".into()).await;
    assert_eq!(u["id"], json!(people.id("alice")), "id is always returned: {u}");
    assert!(u["userName"].is_string(), "{u}");
    for absent in ["displayName", "emails", "name", "title", "active", ENTERPRISE_USER] {
        assert!(u.get(absent).is_none(), "{absent} returned for attributes=userName: {u}");
    }
    let u = get("attributes=USERNAME".into()).await;
    assert!(u["userName"].is_string() && u.get("displayName").is_none(), "attribute names are case-insensitive: {u}");

    let u = get("attributes=name.givenName,emails.value".into()).await;
    assert_eq!(u["name"], json!({"givenName": "Alice"}), "{u}");
    assert_eq!(u["emails"], json!([{"value": "zed@home.org"}, {"value": "alice@example.com"}]), "{u}");
    assert!(u.get("userName").is_none(), "{u}");

    let u = get(format!("attributes={}", enc(&format!("{USER_SCHEMA}:displayName,{ENTERPRISE_USER}:department")))).await;
    assert_eq!(u["displayName"], "alice smith", "{u}");
    assert_eq!(u[ENTERPRISE_USER], json!({"department": "R&D"}), "{u}");
    assert!(u.get("userName").is_none(), "{u}");

    let u = get(format!("excludedAttributes={}", enc(&format!("emails,name,{ENTERPRISE_USER}")))).await;
    for absent in ["emails", "name", ENTERPRISE_USER] {
        assert!(u.get(absent).is_none(), "{absent} not excluded: {u}");
    }
    assert_eq!(u["displayName"], "alice smith");
    assert_eq!(u["title"], "Engineer");
    let u = get(format!("excludedAttributes={}", enc(&format!("{ENTERPRISE_USER}:department,name.familyName")))).await;
    assert_eq!(u[ENTERPRISE_USER], json!({"employeeNumber": "100"}), "{u}");
    assert_eq!(u["name"], json!({"givenName": "Alice"}), "{u}");
    let u = get("excludedAttributes=id,userName".into()).await;
    assert_eq!(u["id"], json!(people.id("alice")), "id cannot be excluded: {u}");

    // Lists and searches.
    let list = scim.get(&format!("/Users?attributes=userName&filter={}", enc("name.familyName eq \"Smith\""))).await;
    assert_eq!(list.expect(200)["totalResults"], json!(2));
    for r in list.body["Resources"].as_array().unwrap() {
        assert!(r["id"].is_string() && r["userName"].is_string() && r.get("displayName").is_none() && r.get("emails").is_none(), "{r}");
    }
    let list = scim.get("/Users?excludedAttributes=emails").await;
    assert!(
        list.expect(200)["Resources"].as_array().unwrap().iter().all(|r| r.get("emails").is_none() && r["userName"].is_string()),
        "{}",
        list.text
    );
    let found = scim.post("/Users/.search", &json!({"attributes": ["displayName"], "filter": "title eq \"Manager\""})).await;
    assert_eq!(found.expect(200)["Resources"][0]["displayName"], "Bob Jones");
    assert!(found.body["Resources"][0].get("userName").is_none(), "{}", found.text);
    let found = scim.post("/.search", &json!({"excludedAttributes": ["emails"], "filter": "title eq \"Manager\""})).await;
    assert!(found.expect(200)["Resources"][0].get("emails").is_none(), "{}", found.text);

    // Groups, and the answer of a create.
    let g = scim
        .post(
            "/Groups?attributes=displayName",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": "Projected", "members": [{"value": people.id("bob")}]}),
        )
        .await;
    assert_eq!(g.expect(201)["displayName"], "Projected");
    assert!(g.body.get("members").is_none(), "{}", g.text);
    let gid = g.body["id"].as_str().unwrap();
    let g = scim.get(&format!("/Groups/{gid}?attributes=members.value")).await;
    assert_eq!(g.expect(200)["members"], json!([{"value": people.id("bob")}]), "{}", g.text);
    let bob = scim.get(&format!("/Users/{}?attributes=groups", people.id("bob"))).await;
    assert_eq!(bob.expect(200)["groups"][0]["value"], json!(gid), "groups is requestable: {}", bob.text);
    p.remove();
}

/// RFC 7644 §3.9: "Clients MAY request a partial resource representation on any operation that
/// returns a resource within the response", PUT and PATCH included.
#[tokio::test]
async fn attributes_shape_the_answers_of_put_and_patch() {
    let p = ScimProvider::new("proto-attrs-w").await;
    let scim = p.client(0);
    let user_name = format!("writer@{}.example.com", p.name);
    let r =
        scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "Writer", "title": "Scribe"})).await;
    let id = r.expect(201)["id"].as_str().unwrap().to_string();
    let r = scim
        .patch(
            &format!("/Users/{id}?attributes=displayName"),
            &patch_op(json!([{"op": "replace", "path": "displayName", "value": "Patched"}])),
        )
        .await;
    assert_eq!(r.expect(200)["displayName"], "Patched");
    assert!(r.body.get("userName").is_none() && r.body.get("title").is_none(), "PATCH ignored attributes: {}", r.text);
    let r = scim
        .put(
            &format!("/Users/{id}?excludedAttributes=title"),
            &json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "Put", "title": "Scribe"}),
        )
        .await;
    assert_eq!(r.expect(200)["displayName"], "Put");
    assert!(r.body.get("title").is_none(), "PUT ignored excludedAttributes: {}", r.text);
    p.remove();
}

#[tokio::test]
async fn sort_by_and_sort_order() {
    let p = ScimProvider::new("proto-sort").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let sorted = |q: String| {
        let scim = scim.clone();
        async move { scim.get(&format!("/Users?{q}")).await }
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("sortBy=userName".into(), vec!["alice", "bob", "carol"]),
        ("sortBy=userName&sortOrder=ascending".into(), vec!["alice", "bob", "carol"]),
        ("sortBy=userName&sortOrder=descending".into(), vec!["carol", "bob", "alice"]),
        // caseExact=false: "alice smith" sorts before "Bob Jones".
        ("sortBy=displayName".into(), vec!["alice", "bob", "carol"]),
        ("sortBy=name.givenName&sortOrder=descending".into(), vec!["carol", "bob", "alice"]),
        // Multi-valued: by the primary value (alice@example.com, not alice's first, zed@home.org).
        ("sortBy=emails.value".into(), vec!["alice", "bob", "carol"]),
        ("sortBy=emails&sortOrder=descending".into(), vec!["carol", "bob", "alice"]),
        (format!("sortBy={}&sortOrder=descending", enc(&format!("{ENTERPRISE_USER}:employeeNumber"))), vec!["carol", "bob", "alice"]),
        ("sortby=USERNAME&sortorder=DESCENDING".into(), vec!["carol", "bob", "alice"]),
        // With a filter and paging: the sort applies before the page is cut.
        (
            format!("filter={}&sortBy=userName&sortOrder=descending&startIndex=2&count=1", enc("name.familyName eq \"Smith\"")),
            vec!["alice"],
        ),
        ("sortBy=userName&startIndex=2&count=2".into(), vec!["bob", "carol"]),
    ];
    for (q, want) in cases {
        let r = sorted(q.clone()).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        assert_eq!(people.names(&r), want, "{q}");
    }
    // A sort on an attribute that does not exist is the client's error.
    let r = sorted("sortBy=noSuchAttribute".into()).await;
    assert_eq!(r.status, 400, "{}", r.text);
    r.expect_error(400, None);
    let r = sorted("sortBy=userName&sortOrder=sideways".into()).await;
    r.expect_error(400, None);
    // The same through a search body.
    let r = scim.post("/Users/.search", &json!({"sortBy": "name.familyName", "sortOrder": "descending", "filter": "title pr"})).await;
    assert_eq!(people.names(&r), vec!["alice", "bob"], "{}", r.text);
    p.remove();
}

#[tokio::test]
async fn search_by_post_at_the_root_and_per_resource_type() {
    let p = ScimProvider::new("proto-search").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let gid = scim
        .post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Smith family", "members": [{"value": people.id("alice")}, {"value": people.id("carol")}]}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "attributes": ["displayName", "userName"],
        "filter": "displayName co \"smith\"",
        "startIndex": 1,
        "count": 10
    });
    // At the root: users and groups alike.
    let r = scim.post("/.search", &search).await;
    assert_eq!(r.expect(200)["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    assert_eq!(r.body["totalResults"], json!(3), "{}", r.text);
    let ids: BTreeSet<String> = r.ids().into_iter().collect();
    assert_eq!(ids, [people.id("alice").to_string(), people.id("carol").to_string(), gid.clone()].into_iter().collect());
    // Per resource type.
    let r = scim.post("/Users/.search", &search).await;
    assert_eq!(people.set(&r), set(&["alice", "carol"]));
    assert!(r.body["Resources"].as_array().unwrap().iter().all(|u| u.get("emails").is_none()), "attributes applied: {}", r.text);
    let r = scim.post("/Groups/.search", &search).await;
    assert_eq!(r.expect(200)["totalResults"], json!(1));
    assert_eq!(r.ids(), vec![gid.clone()]);
    // Paging in the body.
    let r = scim.post("/Users/.search", &json!({"filter": "userName pr", "sortBy": "userName", "startIndex": 2, "count": 1})).await;
    assert_eq!(people.names(&r), vec!["bob"]);
    assert_eq!(r.body["totalResults"], json!(3));
    assert_eq!(r.body["startIndex"], json!(2));
    // A root search whose filter only users understand finds only users.
    let r = scim.post("/.search", &json!({"filter": "title eq \"Manager\""})).await;
    assert_eq!(r.expect(200)["totalResults"], json!(1), "{}", r.text);
    p.remove();
}

// ---- discovery ------------------------------------------------------------------------------------

fn attr<'a>(schema: &'a Value, name: &str) -> &'a Value {
    schema["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))))
        .unwrap_or_else(|| panic!("schema {} has no attribute {name}", schema["id"]))
}

fn sub<'a>(a: &'a Value, name: &str) -> &'a Value {
    a["subAttributes"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("attribute {} has no sub-attribute {name}", a["name"]))
}

#[tokio::test]
async fn discovery_documents_describe_what_is_supported() {
    let p = ScimProvider::new("proto-disc").await;
    let scim = p.client(0);

    let r = scim.get("/ServiceProviderConfig").await;
    let spc = r.expect(200).clone();
    assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    assert_eq!(spc["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]));
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert!(spc["filter"]["maxResults"].as_u64().is_some_and(|m| m >= 100), "{spc}");
    assert_eq!(spc["sort"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["changePassword"]["supported"], false);
    assert!(spc["authenticationSchemes"].as_array().is_some_and(|a| a.iter().any(|s| s["type"] == "oauthbearertoken")), "{spc}");

    let r = scim.get("/ResourceTypes").await;
    let types = r.expect(200).clone();
    assert_eq!(types["schemas"], json!([LIST_RESPONSE]));
    assert_eq!(types["totalResults"], json!(2));
    let by_id: HashMap<String, Value> =
        types["Resources"].as_array().unwrap().iter().map(|t| (t["id"].as_str().unwrap().to_string(), t.clone())).collect();
    let user_type = &by_id["User"];
    assert_eq!(user_type["endpoint"], "/Users");
    assert_eq!(user_type["schema"], USER_SCHEMA);
    assert_eq!(user_type["schemaExtensions"], json!([{"schema": ENTERPRISE_USER, "required": false}]));
    assert_eq!(user_type["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]));
    assert_eq!(user_type["meta"]["resourceType"], "ResourceType");
    assert!(user_type["meta"]["location"].as_str().unwrap().ends_with("/ResourceTypes/User"), "{user_type}");
    assert_eq!(by_id["Group"]["endpoint"], "/Groups");
    assert_eq!(by_id["Group"]["schema"], GROUP_SCHEMA);
    assert_eq!(scim.get("/ResourceTypes/User").await.expect(200), user_type);
    assert_eq!(scim.get("/ResourceTypes/Group").await.expect(200)["id"], "Group");
    scim.get("/ResourceTypes/Widget").await.expect_error(404, None);

    let r = scim.get("/Schemas").await;
    let schemas = r.expect(200).clone();
    assert_eq!(schemas["schemas"], json!([LIST_RESPONSE]));
    let ids: BTreeSet<&str> = schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [USER_SCHEMA, ENTERPRISE_USER, GROUP_SCHEMA].into_iter().collect());
    scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:Widget").await.expect_error(404, None);

    let user = scim.get(&format!("/Schemas/{USER_SCHEMA}")).await.expect(200).clone();
    assert_eq!(user["id"], USER_SCHEMA);
    assert_eq!(user["meta"]["resourceType"], "Schema");
    let user_name = attr(&user, "userName");
    assert_eq!(
        (user_name["uniqueness"].clone(), user_name["caseExact"].clone(), user_name["required"].clone()),
        (json!("server"), json!(false), json!(true))
    );
    let password = attr(&user, "password");
    assert_eq!((password["returned"].clone(), password["mutability"].clone()), (json!("never"), json!("writeOnly")));
    assert_eq!(attr(&user, "groups")["mutability"], "readOnly");
    assert_eq!(attr(&user, "active")["type"], "boolean");
    let emails = attr(&user, "emails");
    assert_eq!(emails["multiValued"], true);
    for s in ["value", "type", "primary", "display"] {
        sub(emails, s);
    }
    for a in [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ] {
        attr(&user, a);
    }
    for s in ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"] {
        sub(attr(&user, "name"), s);
    }

    let enterprise = scim.get(&format!("/Schemas/{ENTERPRISE_USER}")).await.expect(200).clone();
    for a in ["employeeNumber", "costCenter", "organization", "division", "department", "manager"] {
        attr(&enterprise, a);
    }
    for s in ["value", "$ref", "displayName"] {
        sub(attr(&enterprise, "manager"), s);
    }
    assert_eq!(sub(attr(&enterprise, "manager"), "displayName")["mutability"], "readOnly");

    let group = scim.get(&format!("/Schemas/{GROUP_SCHEMA}")).await.expect(200).clone();
    attr(&group, "displayName");
    let members = attr(&group, "members");
    assert_eq!(members["multiValued"], true);
    for s in ["value", "$ref", "type"] {
        sub(members, s);
    }
    p.remove();
}

// ---- versions, atomicity, mutability --------------------------------------------------------------

#[tokio::test]
async fn versions_are_etags_and_if_match_guards_writes() {
    let p = ScimProvider::new("proto-etag").await;
    let scim = p.client(0);
    let user_name = format!("etag@{}.example.com", p.name);
    let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "v1"})).await;
    let v1 = r.expect(201)["meta"]["version"].as_str().unwrap().to_string();
    assert!(v1.starts_with("W/\""), "{v1}");
    assert_eq!(r.header("etag"), Some(v1.as_str()));
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    let g = scim.get(&path).await;
    assert_eq!(g.header("etag"), Some(v1.as_str()));
    assert_eq!(g.body["meta"]["version"], json!(v1));

    let rename = |v: &str| patch_op(json!([{"op": "replace", "path": "displayName", "value": v}]));
    let r = scim.send(Method::PATCH, &path, Some(rename("v2").to_string().into_bytes()), &[("if-match", &v1)]).await;
    let v2 = r.expect(200)["meta"]["version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(r.header("etag"), Some(v2.as_str()));

    // Stale: PATCH, PUT and DELETE are all refused, and nothing changes.
    let r = scim.send(Method::PATCH, &path, Some(rename("stale").to_string().into_bytes()), &[("if-match", &v1)]).await;
    r.expect_error(412, None);
    let put = json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "stale"});
    scim.send(Method::PUT, &path, Some(put.to_string().into_bytes()), &[("if-match", &v1)]).await.expect_error(412, None);
    scim.send(Method::DELETE, &path, None, &[("if-match", &v1)]).await.expect_error(412, None);
    let g = scim.get(&path).await;
    assert_eq!(g.expect(200)["displayName"], "v2");
    assert_eq!(g.body["meta"]["version"], json!(v2));

    // Current, a list of tags, and `*` are accepted.
    let r = scim.send(Method::PUT, &path, Some(put.to_string().into_bytes()), &[("if-match", &v2)]).await;
    let v3 = r.expect(200)["meta"]["version"].as_str().unwrap().to_string();
    let r = scim.send(Method::PATCH, &path, Some(rename("v4").to_string().into_bytes()), &[("if-match", &format!("{v1}, {v3}"))]).await;
    let v4 = r.expect(200)["meta"]["version"].as_str().unwrap().to_string();
    scim.send(Method::PATCH, &path, Some(rename("v5").to_string().into_bytes()), &[("if-match", "*")]).await.expect(200);
    scim.send(Method::DELETE, &path, None, &[("if-match", &v4)]).await.expect_error(412, None);
    let current = scim.get(&path).await.expect(200)["meta"]["version"].as_str().unwrap().to_string();
    scim.send(Method::DELETE, &path, None, &[("if-match", &current)]).await.expect(204);

    // Groups too.
    let r = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Versioned"})).await;
    let gv1 = r.expect(201)["meta"]["version"].as_str().unwrap().to_string();
    let gpath = format!("/Groups/{}", r.body["id"].as_str().unwrap());
    scim.send(Method::PATCH, &gpath, Some(rename("G2").to_string().into_bytes()), &[("if-match", &gv1)]).await.expect(200);
    scim.send(Method::PATCH, &gpath, Some(rename("G3").to_string().into_bytes()), &[("if-match", &gv1)]).await.expect_error(412, None);
    assert_eq!(scim.get(&gpath).await.expect(200)["displayName"], "G2");
    p.remove();
}

#[tokio::test]
async fn patch_requests_are_atomic() {
    let p = ScimProvider::new("proto-atomic").await;
    let scim = p.client(0);
    let r = scim
        .post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": format!("atomic@{}.example.com", p.name), "displayName": "Before"}))
        .await;
    let id = r.expect(201)["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    let before = scim.get(&path).await.expect(200).clone();
    let other = scim.create_user(&format!("other@{}.example.com", p.name)).await;

    let failing: Vec<(Value, Option<&str>)> = vec![
        (
            json!([{"op": "replace", "path": "displayName", "value": "After"}, {"op": "add", "path": "title", "value": "Boss"}, {"op": "replace", "path": "noSuchAttribute", "value": "x"}]),
            Some("invalidPath"),
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "After"}, {"op": "replace", "path": "active", "value": "not a boolean"}]),
            Some("invalidValue"),
        ),
        (json!([{"op": "add", "path": "title", "value": "Boss"}, {"op": "replace", "path": "emails[type eq", "value": "x"}]), None),
        (json!([{"op": "replace", "value": {"displayName": "After"}}, {"op": "remove"}]), None),
        (
            json!([{"op": "replace", "path": "displayName", "value": "After"}, {"op": "replace", "path": "id", "value": "another-id"}]),
            Some("mutability"),
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "After"}, {"op": "replace", "path": "userName", "value": format!("other@{}.example.com", p.name)}]),
            Some("uniqueness"),
        ),
    ];
    for (ops, scim_type) in failing {
        let r = scim.patch(&path, &patch_op(ops.clone())).await;
        assert_eq!(r.status / 100, 4, "{ops}: {}", r.text);
        r.expect_error(r.status, scim_type);
        let now = scim.get(&path).await.expect(200).clone();
        assert_eq!(now, before, "a failed PATCH changed the user: {ops}");
    }

    // Groups: a membership change that fails halfway changes nothing either.
    let g = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Atomic", "members": [{"value": id}]})).await;
    let gpath = format!("/Groups/{}", g.expect(201)["id"].as_str().unwrap());
    let gbefore = scim.get(&gpath).await.expect(200).clone();
    for ops in [
        json!([{"op": "add", "path": "members", "value": [{"value": other}]}, {"op": "replace", "path": "displayName", "value": "Renamed"}, {"op": "add", "path": "members", "value": [{"value": "2819c223-7f76-453a-919d-413861904646"}]}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}, {"op": "remove", "path": "members[value eq"}]),
    ] {
        let r = scim.patch(&gpath, &patch_op(ops.clone())).await;
        assert_eq!(r.status, 400, "{ops}: {}", r.text);
        r.expect_error(400, None);
        assert_eq!(scim.get(&gpath).await.expect(200), &gbefore, "a failed PATCH changed the group: {ops}");
    }
    p.remove();
}

#[tokio::test]
async fn read_only_and_immutable_attributes_are_refused_with_mutability() {
    let p = ScimProvider::new("proto-mut").await;
    let scim = p.client(0);
    let user_name = format!("mut@{}.example.com", p.name);
    let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "Fixed"})).await;
    let id = r.expect(201)["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    let before = scim.get(&path).await.expect(200).clone();

    // PUT that changes the id.
    let r = scim
        .put(&path, &json!({"schemas": [USER_SCHEMA], "id": "6764549bef60420686bc", "userName": user_name, "displayName": "Changed"}))
        .await;
    r.expect_error(400, Some("mutability"));
    // PATCH of id and of the computed groups.
    scim.patch(&path, &patch_op(json!([{"op": "replace", "path": "id", "value": "6764549bef60420686bc"}])))
        .await
        .expect_error(400, Some("mutability"));
    scim.patch(&path, &patch_op(json!([{"op": "add", "path": "groups", "value": [{"value": "6764549bef60420686bc"}]}])))
        .await
        .expect_error(400, Some("mutability"));
    assert_eq!(scim.get(&path).await.expect(200), &before);

    // On create, a client-chosen id is ignored (id is readOnly and "assigned by the service provider").
    let r = scim
        .post("/Users", &json!({"schemas": [USER_SCHEMA], "id": "chosen-by-client", "userName": format!("other@{}.example.com", p.name)}))
        .await;
    assert_ne!(r.expect(201)["id"], "chosen-by-client");

    // PUT with the same id, and meta and groups sent back, is accepted (RFC 7644 §3.5.1 ignores them).
    let mut put = before.clone();
    put["displayName"] = json!("Changed");
    put["meta"]["created"] = json!("1999-01-01T00:00:00Z");
    let r = scim.put(&path, &put).await;
    assert_eq!(r.expect(200)["displayName"], "Changed");
    assert_eq!(r.body["meta"]["created"], before["meta"]["created"]);
    p.remove();
}

#[tokio::test]
async fn requests_in_json_are_accepted_and_answers_are_scim_json() {
    let p = ScimProvider::new("proto-ctype").await;
    for (i, content_type) in
        ["application/json", "application/scim+json", "application/scim+json; charset=utf-8", "application/json; charset=utf-8"]
            .into_iter()
            .enumerate()
    {
        let scim = p.client(0).entra(content_type);
        let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": format!("ct{i}@{}.example.com", p.name)})).await;
        r.expect(201);
        assert_eq!(r.header("content-type"), Some(SCIM_JSON), "{content_type}");
        let id = r.body["id"].as_str().unwrap();
        let r = scim.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "displayName", "value": "x"}]))).await;
        r.expect(200);
        assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    }
    for path in ["/Users", "/Groups", "/Schemas", "/ResourceTypes", "/ServiceProviderConfig"] {
        assert_eq!(p.client(1).get(path).await.header("content-type"), Some(SCIM_JSON), "{path}");
    }
    p.remove();
}

// ---- isolation and consistency ------------------------------------------------------------------

#[tokio::test]
async fn a_key_only_reaches_its_own_providers_users_and_groups() {
    let (a, b) = tokio::join!(ScimProvider::new("proto-iso-a"), ScimProvider::new("proto-iso-b"));
    let (sa, sb) = (a.client(0), b.client(0));
    let shared = "shared.user@example.com";
    let r = sa.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": shared, "displayName": "A's"})).await;
    let ua = r.expect(201)["id"].as_str().unwrap().to_string();
    let ga = sa
        .post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "A's group", "members": [{"value": ua}]}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_user = sa.get(&format!("/Users/{ua}")).await.expect(200).clone();
    let a_group = sa.get(&format!("/Groups/{ga}")).await.expect(200).clone();

    // userName is unique per provider: B may have its own user of the same name.
    let r = sb.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": shared, "displayName": "B's"})).await;
    let ub = r.expect(201)["id"].as_str().unwrap().to_string();
    assert_ne!(ua, ub);

    for replica in 0..env().server_urls.len() {
        let sb = b.client(replica);
        let user = format!("/Users/{ua}");
        sb.get(&user).await.expect_error(404, None);
        sb.put(&user, &json!({"schemas": [USER_SCHEMA], "userName": "stolen"})).await.expect_error(404, None);
        sb.patch(&user, &patch_op(json!([{"op": "replace", "path": "active", "value": false}]))).await.expect_error(404, None);
        sb.delete(&user).await.expect_error(404, None);
        let group = format!("/Groups/{ga}");
        sb.get(&group).await.expect_error(404, None);
        sb.patch(&group, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": ub}]}]))).await.expect_error(404, None);
        sb.delete(&group).await.expect_error(404, None);
        // Lists, filters and searches show B's own resources only.
        eventually(Duration::from_secs(10), "B's user on every replica", || {
            let (sb, ub) = (sb.clone(), ub.clone());
            async move { (sb.get("/Users").await.ids() == vec![ub]).then_some(()) }
        })
        .await;
        assert!(sb.get("/Groups").await.ids().is_empty());
        assert!(sb.filter("Users", &format!("id eq \"{ua}\"")).await.ids().is_empty());
        assert_eq!(sb.filter("Users", &format!("userName eq \"{shared}\"")).await.ids(), vec![ub.clone()]);
        assert_eq!(sb.post("/.search", &json!({"filter": "displayName pr"})).await.ids(), vec![ub.clone()]);
        assert!(sb.filter("Groups", &format!("members[value eq \"{ua}\"]")).await.ids().is_empty());
    }
    // B cannot make A's user a member of its groups.
    let r = sb.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "B's group", "members": [{"value": ua}]})).await;
    r.expect_error(400, Some("invalidValue"));

    // A's resources are untouched.
    assert_eq!(sa.get(&format!("/Users/{ua}")).await.expect(200), &a_user);
    assert_eq!(sa.get(&format!("/Groups/{ga}")).await.expect(200), &a_group);
    assert_eq!(sa.get("/Users").await.ids(), vec![ua.clone()]);
    a.remove();
    b.remove();
}

#[tokio::test]
async fn a_replica_reads_its_own_writes_and_the_other_catches_up() {
    let p = ScimProvider::new("proto-ryw").await;
    let within = Duration::from_secs(5);
    for round in 0..6 {
        let (w, o) = (p.client(round % 2), p.client((round + 1) % 2));
        let user_name = format!("ryw-{round}@{}.example.com", p.name);
        let r = w.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "displayName": "created"})).await;
        let id = r.expect(201)["id"].as_str().unwrap().to_string();
        let path = format!("/Users/{id}");
        // The writer answers from its own write at once, without waiting for its watch.
        w.get(&path).await.expect(200);
        assert_eq!(w.filter("Users", &format!("userName eq \"{user_name}\"")).await.ids(), vec![id.clone()]);
        // A group on the other replica may name the new user as a member right away.
        let g =
            o.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("g{round}"), "members": [{"value": id}]})).await;
        let gid = g.expect(201)["id"].as_str().unwrap().to_string();
        assert_eq!(o.get(&format!("/Groups/{gid}")).await.expect(200)["members"][0]["value"], json!(id));
        // The other replica sees the user within a few seconds.
        eventually(within, "the other replica to see the new user", || {
            let (o, path) = (o.clone(), path.clone());
            async move { (o.get(&path).await.status == 200).then_some(()) }
        })
        .await;
        // A change through the other replica: read at once there, soon on the first.
        let r = o.patch(&path, &patch_op(json!([{"op": "replace", "path": "displayName", "value": "changed"}]))).await;
        assert_eq!(r.expect(200)["displayName"], "changed");
        assert_eq!(o.get(&path).await.expect(200)["displayName"], "changed");
        eventually(within, "the first replica to see the change", || {
            let (w, path) = (w.clone(), path.clone());
            async move { (w.get(&path).await.body["displayName"] == "changed").then_some(()) }
        })
        .await;
        // The group membership shows on the user at the writer of the group and, soon, everywhere.
        eventually(within, "the user's groups on both replicas", || {
            let (w, o, path, gid) = (w.clone(), o.clone(), path.clone(), gid.clone());
            async move {
                let a = w.get(&path).await.body["groups"][0]["value"] == json!(gid);
                let b = o.get(&path).await.body["groups"][0]["value"] == json!(gid);
                (a && b).then_some(())
            }
        })
        .await;
        // A delete: gone at once on the replica that deleted, soon on the other.
        w.delete(&path).await.expect(204);
        w.get(&path).await.expect_error(404, None);
        assert!(w.filter("Users", &format!("userName eq \"{user_name}\"")).await.ids().is_empty());
        assert!(w.get(&format!("/Groups/{gid}")).await.body.get("members").is_none_or(|m| m == &json!([])));
        eventually(within, "the other replica to see the delete", || {
            let (o, path) = (o.clone(), path.clone());
            async move { (o.get(&path).await.status == 404).then_some(()) }
        })
        .await;
    }
    p.remove();
}

/// Read-your-writes while the replica's own watch is still delivering the events of those very
/// writes: a create followed at once by a delete or a rename must never show the old state again.
#[tokio::test]
async fn quick_successive_writes_never_show_a_stale_state() {
    let p = ScimProvider::new("proto-churn").await;
    let scim = p.client(0);
    let mut stale = vec![];
    for i in 0..40 {
        // Create, then delete at once.
        let name = format!("churn-{i}@{}.example.com", p.name);
        let id = scim.create_user(&name).await;
        scim.delete(&format!("/Users/{id}")).await.expect(204);
        for _ in 0..3 {
            let got = scim.get(&format!("/Users/{id}")).await.status;
            let listed = scim.filter("Users", &format!("userName eq \"{name}\"")).await.ids();
            if got != 404 || !listed.is_empty() {
                stale.push(format!("deleted user {name}: GET {got}, listed {listed:?}"));
            }
        }
        // Create, then rename at once.
        let old = format!("before-{i}@{}.example.com", p.name);
        let new = format!("after-{i}@{}.example.com", p.name);
        let id = scim.create_user(&old).await;
        scim.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "userName", "value": new}]))).await.expect(200);
        for _ in 0..3 {
            let got = scim.get(&format!("/Users/{id}")).await.body["userName"].clone();
            let by_old = scim.filter("Users", &format!("userName eq \"{old}\"")).await.ids();
            if got != json!(new) || !by_old.is_empty() {
                stale.push(format!("renamed user {old} -> {new}: GET userName {got}, old name lists {by_old:?}"));
            }
        }
        // Create a group, then delete it at once.
        let g = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("churn-{i}")})).await;
        let gid = g.expect(201)["id"].as_str().unwrap().to_string();
        scim.delete(&format!("/Groups/{gid}")).await.expect(204);
        let got = scim.get(&format!("/Groups/{gid}")).await.status;
        if got != 404 {
            stale.push(format!("deleted group {gid}: GET {got}"));
        }
    }
    assert!(stale.is_empty(), "{} stale reads:\n{}", stale.len(), stale.join("\n"));
    // Once the watches caught up, exactly the 40 renamed users remain, listed once each.
    eventually(Duration::from_secs(10), "40 users on both replicas", || async {
        let a = p.client(0).get("/Users?count=0").await.body["totalResults"].clone();
        let b = p.client(1).get("/Users?count=0").await.body["totalResults"].clone();
        (a == json!(40) && b == json!(40)).then_some(())
    })
    .await;
    assert_eq!(p.objects("users").len(), 40);
    p.remove();
}

/// DELETE of a user removes it from every group, also from a group that another replica made it
/// a member of a moment before (before this replica's watch delivered that change).
#[tokio::test]
async fn a_user_deleted_right_after_another_replica_adds_it_to_a_group_leaves_no_member_behind() {
    let p = ScimProvider::new("proto-delrace").await;
    let (a, b) = (p.client(0), p.client(1));
    let mut rounds = vec![];
    for i in 0..30 {
        let uid = a.create_user(&format!("race-{i}@{}.example.com", p.name)).await;
        let gid = a.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("race-{i}")})).await.expect(201)["id"]
            .as_str()
            .unwrap()
            .to_string();
        eventually(Duration::from_secs(5), "replica 1 to see the user and the group", || {
            let (b, uid, gid) = (b.clone(), uid.clone(), gid.clone());
            async move {
                (b.get(&format!("/Users/{uid}")).await.status == 200 && b.get(&format!("/Groups/{gid}")).await.status == 200).then_some(())
            }
        })
        .await;
        b.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}])))
            .await
            .expect(200);
        a.delete(&format!("/Users/{uid}")).await.expect(204);
        rounds.push((uid, gid));
    }
    for (uid, gid) in &rounds {
        for c in [&a, &b] {
            let g = c.get(&format!("/Groups/{gid}")).await;
            assert!(!g.expect(200).to_string().contains(uid.as_str()), "{}", g.text);
        }
    }
    // In storage, too: no Group object keeps the deleted user as a member.
    assert_no_dangling_members(&p.name, &rounds).await;
    p.remove();
}

/// Waits (10 s) until no Group object of the provider lists any of the deleted users in
/// `spec.members`, and names those that still do.
async fn assert_no_dangling_members(provider: &str, rounds: &[(String, String)]) {
    let groups: kube::Api<infra::api::Group> = kube::Api::namespaced(client().await, &env().namespace);
    let selector = format!("infrahq.com/provider={provider}");
    let deleted: BTreeSet<&str> = rounds.iter().map(|(u, _)| u.as_str()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = groups.list(&kube::api::ListParams::default().labels(&selector)).await.unwrap().items;
        let dangling: Vec<String> = listed
            .iter()
            .flat_map(|g| {
                g.spec.members.iter().filter(|m| deleted.contains(m.value.as_str())).map(move |m| {
                    format!("{} ({}) lists deleted user {}", g.metadata.name.as_deref().unwrap_or_default(), g.spec.display_name, m.value)
                })
            })
            .collect();
        if dangling.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} groups keep a deleted member in spec.members:\n{}",
            dangling.len(),
            rounds.len(),
            dangling.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The other order: one replica deletes the user, and another, whose watch has not delivered the
/// delete yet, is asked to make it a member. Whatever it answers, no group may keep the member.
#[tokio::test]
async fn a_user_added_to_a_group_on_another_replica_right_after_its_delete_leaves_no_member_behind() {
    let p = ScimProvider::new("proto-addrace").await;
    let (a, b) = (p.client(0), p.client(1));
    let mut rounds = vec![];
    for i in 0..30 {
        let uid = a.create_user(&format!("race-{i}@{}.example.com", p.name)).await;
        let gid = a.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": format!("race-{i}")})).await.expect(201)["id"]
            .as_str()
            .unwrap()
            .to_string();
        eventually(Duration::from_secs(5), "replica 1 to see the user and the group", || {
            let (b, uid, gid) = (b.clone(), uid.clone(), gid.clone());
            async move {
                (b.get(&format!("/Users/{uid}")).await.status == 200 && b.get(&format!("/Groups/{gid}")).await.status == 200).then_some(())
            }
        })
        .await;
        a.delete(&format!("/Users/{uid}")).await.expect(204);
        let r = b.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]))).await;
        assert!(r.status == 200 || r.status == 400, "{} {}", r.status, r.text);
        rounds.push((uid, gid));
    }
    assert_no_dangling_members(&p.name, &rounds).await;
    p.remove();
}

/// RFC 7644 §3.5.2.1-3: what add, remove and replace do to simple, complex, multi-valued and
/// extension attributes.
#[tokio::test]
async fn patch_add_remove_and_replace_follow_rfc7644() {
    let p = ScimProvider::new("proto-patch").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let path = format!("/Users/{}", people.id("alice"));
    let patch = |ops: Value| {
        let (scim, path) = (scim.clone(), path.clone());
        async move { scim.patch(&path, &patch_op(ops)).await }
    };

    // add to a multi-valued attribute appends; adding an identical value again changes nothing.
    let phone = json!({"type": "work", "value": "+1 555 0100"});
    patch(json!([{"op": "add", "path": "phoneNumbers", "value": [phone]}])).await.expect(200);
    let u = patch(json!([{"op": "add", "path": "phoneNumbers", "value": [phone]}])).await.expect(200).clone();
    assert_eq!(u["phoneNumbers"], json!([phone]), "{u}");
    let u = patch(json!([{"op": "add", "path": "emails", "value": [{"type": "other", "value": "alice@other.example"}]}]))
        .await
        .expect(200)
        .clone();
    assert_eq!(u["emails"].as_array().unwrap().len(), 3, "{u}");

    // replace of a complex attribute leaves the sub-attributes it does not name.
    let u = patch(json!([{"op": "replace", "path": "name", "value": {"givenName": "Alicia"}}])).await.expect(200).clone();
    assert_eq!(u["name"], json!({"givenName": "Alicia", "familyName": "Smith"}), "{u}");
    let u = patch(json!([{"op": "add", "value": {"name": {"middleName": "M"}}}])).await.expect(200).clone();
    assert_eq!(u["name"], json!({"givenName": "Alicia", "middleName": "M", "familyName": "Smith"}), "{u}");

    // replace through a value filter changes the matching element only.
    let u = patch(json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "new@home.org"}])).await.expect(200).clone();
    let emails = u["emails"].as_array().unwrap();
    assert!(emails.contains(&json!({"type": "home", "value": "new@home.org"})), "{u}");
    assert!(emails.contains(&json!({"type": "work", "value": "alice@example.com", "primary": true})), "{u}");

    // A second primary takes the flag from the first (RFC 7643 §2.4: at most one primary).
    let u = patch(json!([{"op": "replace", "path": "emails[type eq \"other\"].primary", "value": true}])).await.expect(200).clone();
    let primaries: Vec<&Value> = u["emails"].as_array().unwrap().iter().filter(|e| e["primary"] == true).collect();
    assert_eq!(primaries.len(), 1, "{u}");
    assert_eq!(primaries[0]["type"], "other");

    // remove with a value filter removes the matching elements; without one, the attribute.
    let u = patch(json!([{"op": "remove", "path": "emails[type eq \"other\" or type eq \"home\"]"}])).await.expect(200).clone();
    assert_eq!(u["emails"].as_array().unwrap().len(), 1, "{u}");
    let u = patch(json!([{"op": "remove", "path": "title"}, {"op": "remove", "path": "name.middleName"}])).await.expect(200).clone();
    assert!(u.get("title").is_none(), "{u}");
    assert_eq!(u["name"], json!({"givenName": "Alicia", "familyName": "Smith"}));

    // remove without a path has no target.
    patch(json!([{"op": "remove"}])).await.expect_error(400, Some("noTarget"));

    // Removing the last extension attribute removes the extension and its schema URN.
    let u = patch(json!([
        {"op": "remove", "path": format!("{ENTERPRISE_USER}:employeeNumber")},
        {"op": "remove", "path": format!("{ENTERPRISE_USER}:department")}
    ]))
    .await
    .expect(200)
    .clone();
    assert!(u.get(ENTERPRISE_USER).is_none(), "{u}");
    assert_eq!(u["schemas"], json!([USER_SCHEMA]), "{u}");
    // ...and adding one brings both back.
    let u = patch(json!([{"op": "add", "path": format!("{ENTERPRISE_USER}:costCenter"), "value": "4130"}])).await.expect(200).clone();
    assert_eq!(u[ENTERPRISE_USER], json!({"costCenter": "4130"}));
    assert!(u["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE_USER)), "{u}");
    // What PATCH answered is what GET reads.
    assert_eq!(scim.get(&path).await.expect(200), &u);
    p.remove();
}

#[tokio::test]
async fn groups_are_replaced_with_put() {
    let p = ScimProvider::new("proto-gput").await;
    let scim = p.client(0);
    let people = People::create(&scim, &p.name).await;
    let r = scim
        .post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Before", "externalId": "g-1", "members": [{"value": people.id("alice")}, {"value": people.id("bob")}]}))
        .await;
    let created = r.expect(201).clone();
    let gid = created["id"].as_str().unwrap();
    // Sent back as read, with id and meta, with other members and a new name.
    let mut put = created.clone();
    put["displayName"] = json!("After");
    put["members"] = json!([{"value": people.id("carol"), "display": "Carol"}]);
    put.as_object_mut().unwrap().remove("externalId");
    let r = scim.put(&format!("/Groups/{gid}"), &put).await;
    let g = r.expect(200).clone();
    assert_eq!(g["displayName"], "After");
    assert_eq!(g["members"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect::<Vec<_>>(), vec![json!(people.id("carol"))]);
    assert!(g.get("externalId").is_none(), "PUT replaces: {g}");
    assert_eq!(g["meta"]["created"], created["meta"]["created"]);
    assert!(scim.get(&format!("/Users/{}", people.id("alice"))).await.expect(200).get("groups").is_none());
    assert_eq!(scim.get(&format!("/Users/{}", people.id("carol"))).await.expect(200)["groups"][0]["display"], "After");
    // No members at all.
    let r = scim.put(&format!("/Groups/{gid}"), &json!({"schemas": [GROUP_SCHEMA], "displayName": "Empty"})).await;
    assert!(r.expect(200).get("members").is_none_or(|m| m == &json!([])), "{}", r.text);
    // A group needs its displayName.
    scim.put(&format!("/Groups/{gid}"), &json!({"schemas": [GROUP_SCHEMA]})).await.expect_error(400, Some("invalidValue"));
    p.remove();
}

/// Values with characters that need care in URLs and in filter strings.
#[tokio::test]
async fn filter_values_with_special_characters() {
    let p = ScimProvider::new("proto-chars").await;
    let scim = p.client(0);
    let names = [
        format!("first+tag@{}.example.com", p.name),
        format!("o'brien&co@{}.example.com", p.name),
        format!("josé.müller@{}.example.com", p.name),
        format!("semi;colon=eq#hash%25@{}.example.com", p.name),
    ];
    let mut ids = vec![];
    for n in &names {
        ids.push(scim.create_user(n).await);
    }
    for (n, id) in names.iter().zip(&ids) {
        assert_eq!(scim.filter("Users", &format!("userName eq \"{n}\"")).await.ids(), vec![id.clone()], "{n}");
        assert_eq!(scim.get(&format!("/Users/{id}")).await.expect(200)["userName"], json!(n));
    }
    // Case-insensitive for ASCII letters only (src/scim/case.rs): the ASCII upper case is the same
    // user and the same name for uniqueness; É and Ü are other letters than é and ü.
    let upper = names[2].to_ascii_uppercase();
    assert_eq!(scim.filter("Users", &format!("userName eq \"{upper}\"")).await.ids(), vec![ids[2].clone()]);
    scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": upper})).await.expect_error(409, Some("uniqueness"));
    assert!(scim.filter("Users", &format!("userName eq \"{}\"", names[2].to_uppercase())).await.ids().is_empty());
    // An escaped quote inside a filter string.
    let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": format!("rock@{}.example.com", p.name), "displayName": "Dwayne \"The Rock\" Johnson"})).await;
    let rock = r.expect(201)["id"].as_str().unwrap().to_string();
    assert_eq!(scim.filter("Users", "displayName eq \"Dwayne \\\"The Rock\\\" Johnson\"").await.ids(), vec![rock]);
    p.remove();
}
