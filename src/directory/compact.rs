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
/// membership label). The session cache shares its provider names and issuers the same way.
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

/// The user's strings that no index shares, one after another in one allocation: each costs its
/// bytes and a 4-byte end offset instead of an allocation of its own (a header, rounding up, and a
/// pointer and length in the struct). Annotation values follow the fields, in the order of
/// `CompactUser::annotations`.
#[derive(Clone, Copy)]
enum Field {
    Uid,
    ResourceVersion,
    ExternalId,
    DisplayName,
    Attributes,
}

const FIELDS: usize = 5;

pub struct CompactUser {
    pub name: Arc<str>,
    /// The SCIM id (the `infrahq.com/scim-id` label), shared with the directory's indexes.
    pub id: Arc<str>,
    pub provider: Arc<str>,
    pub user_name: Arc<str>,
    pub creation_timestamp: Option<Time>,
    pub active: Option<bool>,
    labels: Pairs,
    /// Interned keys, and where each value ends in `text`.
    annotations: Box<[(Arc<str>, u32)]>,
    /// The `Field`s, then the annotation values.
    text: Box<str>,
    /// Where each `Field` ends in `text` (it starts where the one before ends).
    ends: [u32; FIELDS],
    /// Which `Field`s are present (bit `Field as u8`), so that absent and empty stay apart.
    present: u8,
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
        let attributes = user.spec.attributes.map(|a| serde_json::to_string(&a).expect("a JSON map serializes"));
        let fields = [m.uid, m.resource_version, user.spec.external_id, user.spec.display_name, attributes];
        let annotations = m.annotations.unwrap_or_default();
        let len = fields.iter().flatten().chain(annotations.values()).map(String::len).sum();
        let mut text = String::with_capacity(len);
        let (mut ends, mut present) = ([0; FIELDS], 0);
        for (i, f) in fields.into_iter().enumerate() {
            if let Some(f) = f {
                text.push_str(&f);
                present |= 1 << i;
            }
            ends[i] = offset(&text);
        }
        let annotations = annotations
            .into_iter()
            .map(|(k, v)| {
                text.push_str(&v);
                (strings.get(&k), offset(&text))
            })
            .collect();
        Some(Self {
            name: Arc::from(m.name.unwrap_or_default()),
            id,
            provider,
            user_name: Arc::from(user.spec.user_name),
            creation_timestamp: m.creation_timestamp,
            active: user.spec.active,
            labels: pairs,
            annotations,
            text: text.into_boxed_str(),
            ends,
            present,
            login_groups,
        })
    }

    fn field(&self, f: Field) -> Option<&str> {
        let i = f as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.present & (1 << i) != 0).then(|| &self.text[start..self.ends[i] as usize])
    }

    pub fn uid(&self) -> Option<&str> {
        self.field(Field::Uid)
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.field(Field::ResourceVersion)
    }

    pub fn external_id(&self) -> Option<&str> {
        self.field(Field::ExternalId)
    }

    pub fn display_name(&self) -> Option<&str> {
        self.field(Field::DisplayName)
    }

    fn attributes(&self) -> Option<&str> {
        self.field(Field::Attributes)
    }

    /// The annotations as (key, value).
    fn annotations(&self) -> impl Iterator<Item = (&str, &str)> {
        let starts = std::iter::once(self.ends[FIELDS - 1]).chain(self.annotations.iter().map(|(_, end)| *end));
        self.annotations.iter().zip(starts).map(|((k, end), start)| (&**k, &self.text[start as usize..*end as usize]))
    }

    /// The `display` the client wrote for this user as a member of group `gid`: the annotation of
    /// the membership label's key (absent when the client wrote none).
    pub fn member_display(&self, gid: &str) -> Option<&str> {
        self.annotations().find(|(k, _)| k.strip_prefix(crate::api::MEMBER_LABEL_PREFIX) == Some(gid)).map(|(_, v)| v)
    }

    /// The value of annotation `key`.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The ids of the groups this user's labels make it a member of.
    pub fn member_groups(&self) -> impl Iterator<Item = &str> {
        crate::api::member_groups(self.labels.iter().map(|(k, v)| (&**k, &**v)))
    }

    /// The emails' values, case-folded (ASCII letters only, `scim::case`), for the email index.
    pub fn email_values(&self) -> Vec<String> {
        let Some(attrs) = self.attributes() else { return vec![] };
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
        let owned = |s: Option<&str>| s.map(str::to_string);
        let annotations: BTreeMap<String, String> = self.annotations().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        User {
            metadata: ObjectMeta {
                name: Some(self.name.to_string()),
                uid: owned(self.uid()),
                resource_version: owned(self.resource_version()),
                creation_timestamp: self.creation_timestamp.clone(),
                labels: unpairs(&self.labels),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            spec: UserSpec {
                provider_ref: ProviderRef { name: self.provider.to_string() },
                user_name: self.user_name.to_string(),
                external_id: owned(self.external_id()),
                display_name: owned(self.display_name()),
                active: self.active,
                attributes: self.attributes().and_then(|a| serde_json::from_str(a).ok()),
            },
            status: None,
        }
    }
}

/// `text`'s length as an offset: a User is at most the API server's object size limit (1.5 MiB),
/// far below 4 GiB.
fn offset(text: &str) -> u32 {
    u32::try_from(text.len()).expect("a User's strings are far below 4 GiB")
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
        assert_eq!(back.metadata.resource_version, u.metadata.resource_version);
        assert_eq!(back.metadata.annotations, None);
    }

    #[test]
    fn packed_strings_keep_absent_empty_and_annotations_apart() {
        let gid = "g-1";
        let member_key = crate::api::member_label(gid);
        let mut u = User::new(
            "u-2",
            UserSpec {
                provider_ref: ProviderRef { name: "okta".into() },
                user_name: "bob".into(),
                external_id: Some(String::new()),
                display_name: Some("Bob B\u{fc}rger".into()),
                active: None,
                attributes: None,
            },
        );
        u.metadata.labels = Some([("infrahq.com/scim-id".to_string(), "id-2".to_string())].into());
        u.metadata.annotations = Some(
            [
                ("infrahq.com/created".to_string(), "2026-01-01T00:00:00Z".to_string()),
                ("infrahq.com/last-modified".to_string(), String::new()),
                (member_key, "Bob".to_string()),
            ]
            .into(),
        );
        let c = CompactUser::new(u.clone(), "okta".into(), &mut Interner::default()).unwrap();
        assert_eq!((c.uid(), c.resource_version()), (None, None));
        assert_eq!(c.external_id(), Some(""), "an empty externalId is not an absent one");
        assert_eq!(c.display_name(), Some("Bob B\u{fc}rger"));
        assert_eq!(c.member_display(gid), Some("Bob"));
        assert_eq!(c.member_display("g-2"), None);
        assert!(c.email_values().is_empty());
        let back = c.to_user();
        assert_eq!(back.spec, u.spec);
        assert_eq!(back.metadata.annotations, u.metadata.annotations);
        assert_eq!(back.metadata.uid, None);
    }
}
