//! Property-based fuzzing of the parsers that take untrusted input (issue 9 §8): the SCIM filter
//! parser, PATCH application, the bearer-key parser and the login-state cookie. Each property
//! asserts something about every input, not just "no panic".
//!
//! `cargo test` runs a short, bounded run of each (seconds; `FUZZ_SHORT_CASES` cases per property).
//! `e2e/fuzz` runs them for minutes with fresh seeds and prints the executions and findings; a
//! failing case is shrunk and its seed saved in `tests/fuzz.proptest-regressions`, which later
//! runs replay first. Test names start with their target (`filter_`, `patch_`, `bearer_`,
//! `cookie_`), so `cargo test --test fuzz patch_` runs one target.
//!
//! proptest rather than cargo-fuzz: it runs on stable inside `cargo test` with no extra tooling,
//! and structured generators (filter grammar, PATCH operations) reach far deeper than random
//! bytes would in the same time.

use infra::directory::codec;
use infra::keys::{SCIM_KEY_PREFIX, bearer_token, generate, parse_id};
use infra::scim::ResourceType;
use infra::scim::filter;
use infra::scim::patch;
use infra::server::login::state::{KEY_LEN, LOGIN_TTL_SECS, Opened, StateError, StateKey, return_path};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value, json};

/// Cases per property: `PROPTEST_CASES` when set (the long run sets it), else a short run.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    Config { cases, ..Config::default() }
}

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

// ---- JSON --------------------------------------------------------------------------------------

/// Attribute and sub-attribute names, in canonical and other casing, and some that do not exist.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "value", "type", "primary", "display", "givenName", "familyName", "formatted", "emails", "members",
            "name", "active", "title", "userName", "displayName", "id", "meta", "schemas", "externalId", "phoneNumbers",
            "addresses", "streetAddress", "manager", "employeeNumber", "department", "$ref", "groups", "password",
            "roles", "x509Certificates", "VALUE", "Emails", "nickName", ENTERPRISE,
        ])
        .prop_map(str::to_string),
        1 => "[a-zA-Z$.]{1,8}",
    ]
}

/// Short strings from a small alphabet, so that values collide (and match filters) often.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[abAB@.x]{0,4}",
        1 => prop::sample::select(vec!["work", "home", "Work", "True", "false", "User", "Group", "2011-05-13T04:42:34Z", "2011-05-13T06:42:34+02:00", ""]).prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..3).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![0.0, -0.0, 1.0, 1.5, 1e300]).prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

// ---- filters -------------------------------------------------------------------------------------

/// A filter as a tree, printed with full parentheses; its meaning is checked against the parser's.
#[derive(Debug, Clone)]
enum F {
    Leaf(String),
    Not(Box<F>),
    And(Box<F>, Box<F>),
    Or(Box<F>, Box<F>),
}

impl F {
    fn print(&self) -> String {
        match self {
            F::Leaf(s) => s.clone(),
            F::Not(f) => format!("not ({})", f.print()),
            F::And(a, b) => format!("({}) and ({})", a.print(), b.print()),
            F::Or(a, b) => format!("({}) or ({})", a.print(), b.print()),
        }
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Attribute expressions valid for Users: every operator on strings, the boolean and dateTime
/// ones, `pr`, `eq null`, and value paths with and without Entra's trailing comparison.
fn filter_leaf() -> impl Strategy<Value = String> {
    let string_attr = prop::sample::select(vec![
        "userName",
        "displayName",
        "title",
        "emails.value",
        "emails.type",
        "name.givenName",
        "externalId",
        "EMAILS.VALUE",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    ]);
    let string_op = prop::sample::select(vec!["eq", "ne", "co", "sw", "ew", "gt", "lt", "ge", "le", "EQ"]);
    let word = "[abAB@.x]{0,3}";
    prop_oneof![
        (string_attr.clone(), string_op, word).prop_map(|(a, o, v)| format!("{a} {o} {}", quoted(&v))),
        (string_attr.clone()).prop_map(|a| format!("{a} pr")),
        (string_attr, prop::sample::select(vec!["eq", "ne"])).prop_map(|(a, o)| format!("{a} {o} null")),
        (prop::sample::select(vec!["eq", "ne"]), any::<bool>()).prop_map(|(o, b)| format!("active {o} {b}")),
        (
            prop::sample::select(vec!["gt", "lt", "ge", "le", "eq"]),
            prop::sample::select(vec!["2011-05-13T04:42:34Z", "2020-01-01T00:00:00+01:00"])
        )
            .prop_map(|(o, t)| format!("meta.lastModified {o} \"{t}\"")),
        (word, word).prop_map(|(t, v)| format!("emails[type eq {} and value co {}]", quoted(&t), quoted(&v))),
        (word, word).prop_map(|(t, v)| format!("emails[not (type eq {})].value eq {}", quoted(&t), quoted(&v))),
    ]
}

fn filter_tree() -> impl Strategy<Value = F> {
    filter_leaf().prop_map(F::Leaf).prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|f| F::Not(Box::new(f))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| F::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| F::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn word_value() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), "[abAB@.x]{0,3}".prop_map(Value::String)]
}

/// Users with the attributes the filters test, from the same small alphabet.
fn user_resource() -> impl Strategy<Value = Value> {
    (
        "[abAB@.x]{1,3}",
        word_value(),
        word_value(),
        prop::collection::vec((word_value(), word_value()), 0..3),
        any::<bool>(),
        prop::sample::select(vec!["2011-05-13T04:42:34Z", "2015-01-01T00:00:00Z"]),
        word_value(),
    )
        .prop_map(|(user_name, display, title, emails, active, modified, number)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "id": "1",
                "userName": user_name,
                "displayName": display,
                "title": title,
                "name": {"givenName": display},
                "active": active,
                "emails": emails.into_iter().map(|(t, v)| json!({"type": t, "value": v})).collect::<Vec<_>>(),
                "meta": {"resourceType": "User", "lastModified": modified},
                ENTERPRISE: {"employeeNumber": number},
            })
        })
}

/// One random edit of `s`: a character replaced, inserted or deleted.
fn mutate(s: &str, at: usize, with: char, how: u8) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let i = if chars.is_empty() { 0 } else { at % (chars.len() + 1) };
    match how % 3 {
        0 if i < chars.len() => chars[i] = with,
        1 if i < chars.len() => {
            chars.remove(i);
        }
        _ => chars.insert(i, with),
    }
    chars.into_iter().collect()
}

fn filter_refusal_is_invalid_filter(r: &Result<filter::Filter, infra::scim::ScimError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{}", &e.detail);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any string: no panic, and a refusal is always a 400 `invalidFilter`.
    #[test]
    fn filter_any_input_parses_or_is_refused(input in "\\PC{0,40}|[a-zA-Z.\\[\\]()\" ]{0,60}") {
        for rt in [ResourceType::User, ResourceType::Group] {
            filter_refusal_is_invalid_filter(&filter::parse(&input, rt))?;
            let _ = filter::parse_path(&input, rt);
        }
    }

    /// Well-formed filters parse; `not`, `and`, `or` and parentheses mean what they say, checked
    /// by evaluating the printed composite against its parts on random users.
    #[test]
    fn filter_printed_trees_parse_and_compose(tree in filter_tree(), users in prop::collection::vec(user_resource(), 1..4)) {
        let parse = |f: &F| filter::parse(&f.print(), ResourceType::User);
        let whole = parse(&tree);
        prop_assert!(whole.is_ok(), "{} did not parse: {:?}", tree.print(), whole.err());
        let whole = whole.unwrap();
        for u in &users {
            let expected = match &tree {
                F::Leaf(_) => whole.matches(u),
                F::Not(f) => !parse(f).unwrap().matches(u),
                F::And(a, b) => parse(a).unwrap().matches(u) && parse(b).unwrap().matches(u),
                F::Or(a, b) => parse(a).unwrap().matches(u) || parse(b).unwrap().matches(u),
            };
            prop_assert_eq!(whole.matches(u), expected, "{} on {}", tree.print(), u);
        }
    }

    /// Near-misses of well-formed filters (one character changed) never panic, and are refused
    /// only as `invalidFilter`.
    #[test]
    fn filter_mutated_filters_never_panic(tree in filter_tree(), at in any::<usize>(), with in prop::sample::select(vec!['(', ')', '[', ']', '"', ' ', '.', ':', '\\', 'a', '\u{212a}', '\u{0}']), how in any::<u8>(), user in user_resource()) {
        let input = mutate(&tree.print(), at, with, how);
        let r = filter::parse(&input, ResourceType::User);
        filter_refusal_is_invalid_filter(&r)?;
        if let Ok(f) = r {
            let _ = f.matches(&user);
        }
    }
}

#[test]
fn nesting_depth_is_refused_not_a_stack_overflow() {
    for depth in [1_000, 100_000] {
        let deep = format!("{}userName pr{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(filter::parse(&deep, ResourceType::User).unwrap_err().scim_type, Some("invalidFilter"));
        let nots = format!("{}userName pr", "not ".repeat(depth));
        assert_eq!(filter::parse(&nots, ResourceType::User).unwrap_err().scim_type, Some("invalidFilter"));
    }
}

// ---- PATCH ---------------------------------------------------------------------------------------

fn base_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "6764549bef60420686bc",
        "meta": {"resourceType": "User", "created": "2018-03-27T19:59:26.000Z", "lastModified": "2018-03-27T19:59:26.000Z"},
        "userName": "Test_User",
        "name": {"givenName": "g", "familyName": "f"},
        "active": true,
        "emails": [{"value": "a@x.com", "type": "work", "primary": true}, {"value": "b@x.com"}]
    })
}

fn base_group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "abf4dd94",
        "displayName": "G",
        "members": [{"value": "a", "display": "A"}, {"value": "b"}]
    })
}

fn patch_path() -> impl Strategy<Value = Option<String>> {
    let known = prop::sample::select(vec![
        "title",
        "emails",
        "emails[type eq \"work\"]",
        "emails[type eq \"work\"].value",
        "emails[value co \"a\"].primary",
        "emails.value",
        "emails.type",
        "name",
        "name.givenName",
        "NAME.familyName",
        "active",
        "userName",
        "displayName",
        "externalId",
        "id",
        "meta.created",
        "groups",
        "schemas",
        "phoneNumbers",
        "phoneNumbers[type eq \"mobile\"].value",
        "addresses[type eq \"work\" and country eq \"x\"].postalCode",
        "x509Certificates",
        "roles[primary eq true]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "members",
        "members[value eq \"a\"]",
        "members[value eq \"b\"].display",
        "members[display pr]",
        "members.value",
        "",
        "nope",
        "emails[type eq]",
        "emails[type eq \"work\"",
    ])
    .prop_map(str::to_string);
    prop_oneof![1 => Just(None), 6 => known.prop_map(Some), 1 => "[a-zA-Z.\\[\\]\" ]{0,20}".prop_map(Some)]
}

fn patch_value() -> impl Strategy<Value = Option<Value>> {
    let element = (text(), prop::option::of(text()), prop::option::of(any::<bool>())).prop_map(|(v, t, p)| {
        let mut e = json!({"value": v});
        if let Some(t) = t {
            e["type"] = json!(t);
        }
        if let Some(p) = p {
            e["primary"] = json!(p);
        }
        e
    });
    prop_oneof![
        1 => Just(None),
        3 => json_value().prop_map(Some),
        2 => prop::collection::vec(element, 0..6).prop_map(|v| Some(Value::Array(v))),
        1 => (key(), json_value()).prop_map(|(k, v)| Some(json!({k: v}))),
    ]
}

fn operation() -> impl Strategy<Value = Value> {
    (prop::sample::select(vec!["add", "remove", "replace", "Add", "REPLACE", "Remove", "move"]), patch_path(), patch_value()).prop_map(
        |(op, path, value)| {
            let mut o = json!({"op": op});
            if let Some(p) = path {
                o["path"] = json!(p);
            }
            if let Some(v) = value {
                o["value"] = v;
            }
            o
        },
    )
}

/// What a POST or PUT would send back for `resource`: its attributes without the server's.
fn client_attributes(resource: &Value) -> Value {
    let mut attrs = resource.clone();
    for k in ["id", "meta", "schemas", "groups"] {
        attrs.as_object_mut().unwrap().remove(k);
    }
    attrs
}

fn check_patch(rt: ResourceType, base: &Value, ops: Vec<Value>) -> Result<(), TestCaseError> {
    let body = json!({"schemas": [patch::PATCH_OP_SCHEMA], "Operations": ops});
    match patch::apply(base, rt, &body) {
        Err(e) => {
            prop_assert_eq!(e.status, 400, "{}", &e.detail);
            prop_assert!(e.scim_type.is_some(), "{}", &e.detail);
        }
        Ok(out) => {
            // The result still validates: written whole, as a PUT would write it, it passes the
            // schema again, and the server can store it (or refuses it as a client error).
            let rewritten = patch::write_resource(&json!({"schemas": [rt.schema().id]}), rt, &client_attributes(&out));
            prop_assert!(rewritten.is_ok(), "{} does not validate: {:?}", out, rewritten.err());
            prop_assert_eq!(&out["id"], &base["id"], "id changed");
            let stored = match rt {
                ResourceType::User => codec::user_spec_from_scim(&out, "p").err(),
                ResourceType::Group => codec::group_spec_from_scim(&out, "p").err(),
            };
            if let Some(e) = stored {
                prop_assert_eq!(e.status, 400, "{}", &e.detail);
            }
            // At most one primary per multi-valued attribute (RFC 7643 §2.4), and within limits.
            for (name, v) in out.as_object().unwrap() {
                if let Value::Array(items) = v {
                    let primaries = items.iter().filter(|e| e.get("primary") == Some(&json!(true))).count();
                    prop_assert!(primaries <= 1, "{} has {} primaries: {}", name, primaries, out);
                    prop_assert!(name == "members" || items.len() <= patch::MAX_VALUES_PER_ATTRIBUTE);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// PATCH never panics, and either refuses with a 400 and a scimType or returns a resource that
    /// still validates.
    #[test]
    fn patch_users_error_or_stay_valid(ops in prop::collection::vec(operation(), 1..5)) {
        check_patch(ResourceType::User, &base_user(), ops)?;
    }

    #[test]
    fn patch_groups_error_or_stay_valid(ops in prop::collection::vec(operation(), 1..5)) {
        check_patch(ResourceType::Group, &base_group(), ops)?;
    }

    /// Any body at all, not only well-formed PatchOps.
    #[test]
    fn patch_any_body_never_panics(body in json_value()) {
        for (rt, base) in [(ResourceType::User, base_user()), (ResourceType::Group, base_group())] {
            if let Err(e) = patch::apply(&base, rt, &body) {
                prop_assert_eq!(e.status, 400, "{}", &e.detail);
            }
        }
    }

    /// Adding members merges exactly as comparing them pairwise would: each value once, compared
    /// case-insensitively (members.value is not caseExact), in order of first appearance.
    #[test]
    fn patch_member_merge_matches_pairwise(existing in prop::collection::vec("[aAbB]{1,2}", 0..8), added in prop::collection::vec("[aAbBc]{1,2}", 0..12), replace in any::<bool>()) {
        let mut group = base_group();
        group["members"] = existing.iter().map(|v| json!({"value": v})).collect();
        let op = if replace { "replace" } else { "add" };
        let body = json!({"Operations": [{"op": op, "path": "members", "value": added.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()}]});
        let out = patch::apply(&group, ResourceType::Group, &body).unwrap();
        let mut expected: Vec<String> = if replace { vec![] } else { existing.clone() };
        for a in &added {
            if !expected.iter().any(|e| e.to_lowercase() == a.to_lowercase()) {
                expected.push(a.clone());
            }
        }
        let got: Vec<String> = out["members"].as_array().map_or(vec![], |m| m.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect());
        prop_assert_eq!(got, expected);
    }
}

// ---- bearer keys ---------------------------------------------------------------------------------

/// The shape of a SCIM key, checked independently of `keys::parse_id`.
fn well_formed_key(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(SCIM_KEY_PREFIX) else { return false };
    let parts: Vec<&str> = rest.split('_').collect();
    parts.len() == 2
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && parts[1].len() == 43
        && parts[1].bytes().all(|b| b.is_ascii_alphanumeric())
}

proptest! {
    #![proptest_config(config())]

    /// A header yields a token only when it is `Bearer` (any case), one space, and an RFC 6750
    /// b64token; the token is exactly what followed the scheme, trimmed.
    #[test]
    fn bearer_headers_yield_only_b64tokens(header in "[ \t]{0,2}(?i:bearer|basic|bear)[ \t]{0,2}[A-Za-z0-9_=~+/. \t\u{b}\u{c}\u{a0},;\"-]{0,20}|\\PC{0,30}") {
        if let Some(token) = bearer_token(&header) {
            let b64 = token.trim_end_matches('=');
            prop_assert!(!b64.is_empty(), "{:?}", header);
            prop_assert!(b64.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)), "{:?} gave {:?}", header, token);
            let (scheme, rest) = header.trim().split_at(6);
            prop_assert!(scheme.eq_ignore_ascii_case("bearer") && rest.starts_with(' '), "{:?}", header);
            prop_assert_eq!(rest.trim(), token);
        }
    }

    /// `parse_id` accepts exactly the key shape, and the id it returns is the key's.
    #[test]
    fn bearer_parse_id_accepts_only_the_key_shape(token in "isk_[a-z0-9A-Z_]{10,14}_[a-zA-Z0-9_ ]{41,45}|\\PC{0,64}") {
        match parse_id(&token) {
            Some(id) => {
                prop_assert!(well_formed_key(&token), "{:?}", token);
                prop_assert_eq!(&token[4..16], id);
            }
            None => prop_assert!(!well_formed_key(&token), "{:?} refused", token),
        }
    }

    /// Generated keys parse; one edit of a key is accepted only if it still has the key shape
    /// (it is then a different key, which verification refuses).
    #[test]
    fn bearer_edited_keys_keep_the_shape_rules(at in any::<usize>(), with in any::<char>(), how in any::<u8>()) {
        let key = generate().unwrap();
        prop_assert_eq!(parse_id(&key.token), Some(key.id.as_str()));
        let edited = mutate(&key.token, at, with, how);
        prop_assert_eq!(parse_id(&edited).is_some(), well_formed_key(&edited), "{:?}", edited);
        if edited != key.token {
            prop_assert!(!infra::keys::verify(&edited, &key.token));
        }
        let header = format!("Bearer {edited}");
        if let Some(t) = bearer_token(&header) {
            prop_assert_eq!(t, edited.trim());
        }
    }
}

// ---- login-state cookie -------------------------------------------------------------------------

fn state_key() -> impl Strategy<Value = StateKey> {
    prop::array::uniform32(any::<u8>()).prop_map(|b| StateKey::from_bytes(&b[..KEY_LEN]).unwrap())
}

proptest! {
    #![proptest_config(config())]

    /// What is issued opens, with the provider it was issued for, until it expires.
    #[test]
    fn cookie_round_trips(key in state_key(), login in "[a-zA-Z0-9_-]{1,24}", provider in "\\PC{0,30}", return_to in prop::option::of("/\\PC{0,40}"), now in 0i64..4_000_000_000, after in 0i64..(2 * LOGIN_TTL_SECS)) {
        let (cookie, params) = key.issue(&login, &provider, return_to.as_deref(), now);
        let opened = key.open(Some(&cookie), &params.state, now + after);
        if after < LOGIN_TTL_SECS {
            prop_assert_eq!(opened, Ok(Opened { provider, params, return_to }));
        } else {
            prop_assert_eq!(opened, Err(StateError::Expired));
        }
    }

    /// Any edit of a cookie (a character replaced, inserted or removed anywhere: body, provider,
    /// expiry or MAC) is refused, as is the cookie under another key or with another state.
    #[test]
    fn cookie_tampering_is_refused(key in state_key(), other in state_key(), login in "[a-zA-Z0-9]{1,24}", provider in "\\PC{0,20}", return_to in prop::option::of("/[a-z?=&-]{0,20}"), at in any::<usize>(), with in prop::sample::select(vec!['.', 'A', 'a', '0', '9', '-', '_', '=', '+', '/', '\u{e9}']), how in any::<u8>(), state in "\\PC{0,50}") {
        let now = 1_700_000_000;
        let (cookie, params) = key.issue(&login, &provider, return_to.as_deref(), now);
        let tampered = mutate(&cookie, at, with, how);
        if tampered != cookie {
            prop_assert_eq!(key.open(Some(&tampered), &params.state, now + 1), Err(StateError::Invalid), "{:?}", tampered);
        }
        if other.open(Some(&cookie), &params.state, now + 1).is_ok() {
            prop_assert!(false, "another key opened the cookie");
        }
        if state != params.state {
            prop_assert_eq!(key.open(Some(&cookie), &state, now + 1), Err(StateError::StateMismatch));
        }
    }

    /// A login's return path never leads off this server's origin or out of its base path, however
    /// it is spelled (no open redirect).
    #[test]
    fn return_paths_stay_on_this_server(raw in "[/\\\\.:@a-z%?#&=]{0,24}|\\PC{0,40}", base in prop::sample::select(vec!["/", "/infra/"])) {
        if let Some(path) = return_path(&raw, base) {
            let here = url::Url::parse("https://infra.example.com/").unwrap();
            let landed = here.join(&path).unwrap();
            prop_assert_eq!(landed.origin(), here.origin(), "{:?} -> {:?}", raw, path);
            prop_assert!(landed.path().starts_with(base), "{:?} -> {:?}", raw, path);
            prop_assert!(!path.starts_with("//") && !path.contains('\\'), "{:?}", path);
        }
    }

    /// Whatever a person types, a user code comes out canonical or not at all.
    #[test]
    fn typed_user_codes_normalise_to_the_canonical_form(typed in "[bcdfghjklmnpqrstvwxzBCDFGHJKLMNPQRSTVWXZ -]{0,20}|\\PC{0,20}") {
        if let Some(code) = infra::device::normalize_user_code(&typed) {
            prop_assert_eq!(code.len(), 9);
            prop_assert_eq!(infra::device::normalize_user_code(&code), Some(code.clone()));
            prop_assert_eq!(code.replace('-', ""), typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).collect::<String>().to_ascii_uppercase());
        }
    }

    /// Arbitrary cookies never open.
    #[test]
    fn cookie_arbitrary_values_never_open(key in state_key(), cookie in "[a-zA-Z0-9_.-]{0,120}|\\PC{0,80}", state in "[a-zA-Z0-9_-]{43}") {
        prop_assert!(key.open(Some(&cookie), &state, 0).is_err());
    }
}
