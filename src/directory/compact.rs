//! The form users take in the server's memory. A `User` as deserialized costs about 6 KiB (its
//! metadata maps and the attribute tree are many small allocations); this keeps the same content
//! in about a tenth of that, which is what lets one replica hold tens of thousands of users. The
//! attributes stay serialized and are parsed only when a user is rendered.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{ProviderRef, User, UserSpec, labels};

type Pairs = Box<[(Arc<str>, Arc<str>)]>;

/// One shared copy of strings that thousands of users repeat: label and annotation keys, and
/// label values other than the SCIM id (provider names, `infra-server`, the empty value of a
/// membership label).
#[derive(Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

pub struct CompactUser {
    pub name: Arc<str>,
    /// The SCIM id (the `infrahq.com/scim-id` label), shared with the directory's indexes.
    pub id: Arc<str>,
    pub uid: Option<Box<str>>,
    pub resource_version: Option<Box<str>>,
    pub creation_timestamp: Option<Time>,
    labels: Pairs,
    annotations: Pairs,
    pub provider: Arc<str>,
    pub user_name: Arc<str>,
    pub external_id: Option<Box<str>>,
    pub display_name: Option<Box<str>>,
    pub active: Option<bool>,
    attributes: Option<Box<str>>,
    /// `status.loginGroups`: the groups the provider asserted at the last login (names shared).
    pub login_groups: Box<[Arc<str>]>,
}

fn unpairs(p: &Pairs) -> Option<BTreeMap<String, String>> {
    (!p.is_empty()).then(|| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

impl CompactUser {
    /// Owner references and managed fields are dropped: the server re-derives the owner (the
    /// provider) when it writes, and never reads managed fields. `None` for a user without a
    /// SCIM id (not one of the server's).
    pub fn new(user: User, provider: Arc<str>, strings: &mut Interner) -> Option<Self> {
        let login_groups = user.status.and_then(|s| s.login_groups).unwrap_or_default().iter().map(|g| strings.get(g)).collect();
        let m = user.metadata;
        let label_map = m.labels.unwrap_or_default();
        let id: Arc<str> = Arc::from(label_map.get(labels::SCIM_ID)?.as_str());
        let pairs = label_map
            .into_iter()
            .map(|(k, v)| {
                let value = if k == labels::SCIM_ID { id.clone() } else { strings.get(&v) };
                (strings.get(&k), value)
            })
            .collect();
        let annotations: Pairs = m.annotations.unwrap_or_default().into_iter().map(|(k, v)| (strings.get(&k), Arc::from(v))).collect();
        Some(Self {
            name: Arc::from(m.name.unwrap_or_default()),
            id,
            uid: m.uid.map(String::into_boxed_str),
            resource_version: m.resource_version.map(String::into_boxed_str),
            creation_timestamp: m.creation_timestamp,
            labels: pairs,
            annotations,
            provider,
            user_name: Arc::from(user.spec.user_name),
            external_id: user.spec.external_id.map(String::into_boxed_str),
            display_name: user.spec.display_name.map(String::into_boxed_str),
            active: user.spec.active,
            attributes: user.spec.attributes.map(|a| serde_json::to_string(&a).expect("a JSON map serializes").into_boxed_str()),
            login_groups,
        })
    }

    /// The `display` the client wrote for this user as a member of group `gid`: the annotation of
    /// the membership label's key (absent when the client wrote none).
    pub fn member_display(&self, gid: &str) -> Option<&str> {
        self.annotations.iter().find(|(k, _)| k.strip_prefix(crate::api::MEMBER_LABEL_PREFIX) == Some(gid)).map(|(_, v)| &**v)
    }

    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// The ids of the groups this user's labels make it a member of.
    pub fn member_groups(&self) -> impl Iterator<Item = &str> {
        crate::api::member_groups(self.labels.iter().map(|(k, v)| (&**k, &**v)))
    }

    /// The emails' values, case-folded (ASCII letters only, `scim::case`), for the email index.
    pub fn email_values(&self) -> Vec<String> {
        let Some(attrs) = &self.attributes else { return vec![] };
        #[derive(serde::Deserialize)]
        struct Emails {
            #[serde(default)]
            emails: Vec<Email>,
        }
        #[derive(serde::Deserialize)]
        struct Email {
            value: Option<String>,
        }
        serde_json::from_str::<Emails>(attrs)
            .map(|e| e.emails.into_iter().filter_map(|e| e.value).map(|v| crate::scim::case::fold_case(&v).into_owned()).collect())
            .unwrap_or_default()
    }

    pub fn to_user(&self) -> User {
        User {
            metadata: ObjectMeta {
                name: Some(self.name.to_string()),
                uid: self.uid.as_deref().map(str::to_string),
                resource_version: self.resource_version.as_deref().map(str::to_string),
                creation_timestamp: self.creation_timestamp.clone(),
                labels: unpairs(&self.labels),
                annotations: unpairs(&self.annotations),
                ..Default::default()
            },
            spec: UserSpec {
                provider_ref: ProviderRef { name: self.provider.to_string() },
                user_name: self.user_name.to_string(),
                external_id: self.external_id.as_deref().map(str::to_string),
                display_name: self.display_name.as_deref().map(str::to_string),
                active: self.active,
                attributes: self.attributes.as_deref().and_then(|a| serde_json::from_str(a).ok()),
            },
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_what_the_server_needs() {
        let mut u = User::new(
            "u-1",
            UserSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                user_name: "alice".into(),
                external_id: Some("00u1".into()),
                display_name: None,
                active: Some(false),
                attributes: json!({"emails": [{"value": "Alice@Example.com"}], "name": {"givenName": "A"}}).as_object().cloned(),
            },
        );
        u.metadata.uid = Some("uid".into());
        u.metadata.resource_version = Some("7".into());
        u.metadata.labels = Some([("infrahq.com/scim-id".to_string(), "id-1".to_string())].into());
        u.status = Some(crate::api::UserStatus { login_groups: Some(vec!["admins".into()]), ..Default::default() });
        let c = CompactUser::new(u.clone(), "okta".into(), &mut Interner::default()).unwrap();
        assert_eq!(&*c.id, "id-1");
        assert_eq!(c.login_groups.iter().map(|g| &**g).collect::<Vec<_>>(), ["admins"]);
        assert_eq!(c.email_values(), vec!["alice@example.com"]);
        let back = c.to_user();
        assert_eq!(back.spec, u.spec);
        assert_eq!(back.metadata.labels, u.metadata.labels);
        assert_eq!(back.metadata.uid, u.metadata.uid);
    }
}
