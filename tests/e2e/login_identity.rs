//! Who a login is (issue 9 §4): a User is bound to the provider's subject of its first login, an
//! email the provider marks unverified is never a username, and userNames fold ASCII letters
//! only, so the Kelvin sign is not a `k`.

use infra::api::User;
use infra::directory::naming::user_object_name;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::harness::{ScimProvider, USER_SCHEMA, client, env, json, kubectl};
use crate::idp::{new_unverified_user, new_user};
use crate::login::{authorize, login, redeem, refusal};

async fn users() -> Api<User> {
    Api::namespaced(client().await, &env().namespace)
}

async fn user_of(provider: &str, user_name: &str) -> User {
    let name = user_object_name(provider, user_name);
    users().await.get(&name).await.unwrap_or_else(|e| panic!("User {name} ({user_name}): {e}"))
}

fn subject_of(user: &User) -> Option<String> {
    user.status.as_ref().and_then(|s| s.login_subject.clone())
}

#[tokio::test]
async fn a_login_whose_subject_differs_from_the_recorded_one_is_refused() {
    let person = new_user("subject", &["engineering"]).await;
    login("okta", &person).await;
    let bound = user_of("okta", &person.email).await;
    let sub = subject_of(&bound).unwrap_or_else(|| panic!("the first login records the subject: {:?}", bound.status));
    assert!(sub.starts_with("00u"), "{sub}");
    // Another account at the provider now claims this userName (simulated by binding the User
    // to another subject).
    let name = user_object_name("okta", &person.email);
    let patch = json!({"status": {"loginSubject": "00u-someone-else"}});
    users().await.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let before = users().await.get(&name).await.unwrap();
    let a = authorize("okta", &person).await;
    let (status, body) = redeem(&env().server_urls[0], "okta", &a).await;
    refusal(status, &body, 403, "subject_mismatch");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("another account") && message.contains("loginSubject"), "{message}");
    assert!(!message.contains("00u-someone-else"), "the other account's subject is not shown: {message}");
    // The User was not touched.
    let after = users().await.get(&name).await.unwrap();
    assert_eq!(after.metadata.resource_version, before.metadata.resource_version);
    assert_eq!(subject_of(&after).as_deref(), Some("00u-someone-else"));
    // The administrator follows the message: remove the recorded subject; the next login binds again.
    let remove = message.split("kubectl ").nth(1).expect("the message names the command");
    assert!(remove.contains(&format!("patch user {name} --subresource=status")), "{message}");
    kubectl(&[
        "-n",
        &env().namespace,
        "patch",
        "user",
        &name,
        "--subresource=status",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/status/loginSubject"}]"#,
    ])
    .ok();
    login("okta", &person).await;
    assert_eq!(subject_of(&user_of("okta", &person.email).await), Some(sub));
}

#[tokio::test]
async fn scim_writes_and_renames_keep_the_recorded_subject() {
    let p = ScimProvider::new("subject-rename").await;
    let person = new_user("subject-rename", &[]).await;
    let scim = p.client(0);
    let id = scim.create_user(&person.email).await;
    login(&p.name, &person).await;
    let sub = subject_of(&user_of(&p.name, &person.email).await).expect("bound at login");
    // A replace that keeps the userName, then one that renames (a new object under a new name).
    scim.put(&format!("/Users/{id}"), &json!({"schemas": [USER_SCHEMA], "userName": person.email, "displayName": "Kept"}))
        .await
        .expect(200);
    assert_eq!(subject_of(&user_of(&p.name, &person.email).await).as_deref(), Some(sub.as_str()));
    let renamed = format!("renamed-{}", person.email);
    scim.put(&format!("/Users/{id}"), &json!({"schemas": [USER_SCHEMA], "userName": renamed})).await.expect(200);
    let moved = user_of(&p.name, &renamed).await;
    assert_ne!(moved.metadata.name.as_deref(), Some(user_object_name(&p.name, &person.email).as_str()));
    assert_eq!(subject_of(&moved).as_deref(), Some(sub.as_str()), "{:?}", moved.status);
    p.remove();
}

#[tokio::test]
async fn an_unverified_email_is_not_used_as_username() {
    let p = ScimProvider::new("unverified").await;
    let person = new_unverified_user("unverified").await;
    // SCIM provisioned the real owner of the address; the login of an account whose address the
    // provider has not verified must not become that user.
    let id = p.client(0).create_user(&person.email).await;
    let a = authorize(&p.name, &person).await;
    let (status, body) = redeem(&env().server_urls[0], &p.name, &a).await;
    refusal(status, &body, 403, "email_not_verified");
    assert!(body["message"].as_str().unwrap().contains("not verified"), "{body}");
    let user = user_of(&p.name, &person.email).await;
    assert_eq!(subject_of(&user), None, "the SCIM user was not bound: {:?}", user.status);
    assert!(user.status.as_ref().and_then(|s| s.last_login_time.as_ref()).is_none(), "{:?}", user.status);
    assert_eq!(p.objects("users").len(), 1);
    p.client(0).get(&format!("/Users/{id}")).await.expect(200);
    // Without a SCIM user, no User is created either.
    let other = new_unverified_user("unverified-new").await;
    let a = authorize("okta", &other).await;
    let (status, body) = redeem(&env().server_urls[1], "okta", &a).await;
    refusal(status, &body, 403, "email_not_verified");
    let name = user_object_name("okta", &other.email);
    assert!(users().await.get_opt(&name).await.unwrap().is_none(), "no User for an unverified address");
    p.remove();
}

#[tokio::test]
async fn user_names_fold_ascii_letters_only() {
    let p = ScimProvider::new("kelvin").await;
    let scim = p.client(0);
    let kate = format!("kate@{}.example.com", p.name);
    // U+212A KELVIN SIGN, which Unicode lower-casing turns into an ASCII `k`.
    let kelvin = format!("\u{212A}ate@{}.example.com", p.name);
    let kate_id = scim.create_user(&kate).await;
    let kelvin_id = scim.create_user(&kelvin).await;
    assert_ne!(kate_id, kelvin_id);
    assert_eq!(p.objects("users").len(), 2, "two distinct users");
    let upper = format!("KATE@{}.EXAMPLE.COM", p.name.to_ascii_uppercase());
    for i in 0..env().server_urls.len() {
        assert_eq!(p.client(i).filter("Users", &format!("userName eq \"{upper}\"")).await.ids(), vec![kate_id.clone()], "replica {i}");
        assert_eq!(p.client(i).filter("Users", &format!("userName eq \"{kelvin}\"")).await.ids(), vec![kelvin_id.clone()], "replica {i}");
    }
    assert_eq!(scim.get(&format!("/Users/{kelvin_id}")).await.expect(200)["userName"], json!(kelvin));
    // ASCII case still folds for uniqueness.
    scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": upper})).await.expect_error(409, Some("uniqueness"));
    p.remove();
}
