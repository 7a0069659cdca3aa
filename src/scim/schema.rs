//! The schemas this server implements (RFC 7643 §4 and §8.7.1): the core User, the Enterprise User
//! extension and the Group, plus the common attributes of §3.1. Every other module asks this one
//! what an attribute is (type, case sensitivity, mutability, returned), so they all agree, and the
//! `/Schemas` and `/ResourceTypes` documents are generated from the same definitions.

use std::sync::LazyLock;

use serde_json::{Value, json};

use super::json::field;
use super::list;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

/// RFC 7643 §2.3 data types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

impl AttrType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Decimal => "decimal",
            Self::Integer => "integer",
            Self::DateTime => "dateTime",
            Self::Binary => "binary",
            Self::Reference => "reference",
            Self::Complex => "complex",
        }
    }
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Mutability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadOnly => "readOnly",
            Self::ReadWrite => "readWrite",
            Self::Immutable => "immutable",
            Self::WriteOnly => "writeOnly",
        }
    }
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

impl Returned {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Never => "never",
            Self::Default => "default",
            Self::Request => "request",
        }
    }
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Uniqueness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Server => "server",
            Self::Global => "global",
        }
    }
}

/// One attribute definition with the characteristics of RFC 7643 §2.2 / §7.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrDef {
    pub name: &'static str,
    pub ty: AttrType,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    pub canonical_values: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
    pub sub_attributes: Vec<AttrDef>,
}

impl AttrDef {
    /// The sub-attribute called `name`; attribute names are case-insensitive (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&AttrDef> {
        self.sub_attributes.iter().find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }

    /// The attribute as it appears in a `/Schemas` document.
    pub fn to_json(&self) -> Value {
        let mut a = json!({
            "name": self.name,
            "type": self.ty.as_str(),
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability.as_str(),
            "returned": self.returned.as_str(),
            "uniqueness": self.uniqueness.as_str(),
        });
        if !self.canonical_values.is_empty() {
            a["canonicalValues"] = json!(self.canonical_values);
        }
        if !self.reference_types.is_empty() {
            a["referenceTypes"] = json!(self.reference_types);
        }
        if self.is_complex() {
            a["subAttributes"] = Value::Array(self.sub_attributes.iter().map(AttrDef::to_json).collect());
        }
        a
    }

    // Builders for the tables below; the defaults are the RFC 7643 §2.2 defaults.
    fn new(name: &'static str, ty: AttrType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            canonical_values: &[],
            reference_types: &[],
            description,
            sub_attributes: Vec::new(),
        }
    }
    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn case_exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    fn canonical(mut self, values: &'static [&'static str]) -> Self {
        self.canonical_values = values;
        self
    }
    /// Applies a mutability to the attribute and all its sub-attributes, as RFC 7643 does for
    /// `groups` (all readOnly) and `members` (sub-attributes immutable).
    fn all_subs(mut self, m: Mutability) -> Self {
        for s in &mut self.sub_attributes {
            s.mutability = m;
        }
        self
    }
}

fn string(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::String, description)
}
fn boolean(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::Boolean, description)
}
fn date_time(name: &'static str, description: &'static str) -> AttrDef {
    AttrDef::new(name, AttrType::DateTime, description)
}
fn binary(name: &'static str, description: &'static str) -> AttrDef {
    // Binary values are base64: case matters.
    AttrDef::new(name, AttrType::Binary, description).case_exact()
}
fn reference(name: &'static str, types: &'static [&'static str], description: &'static str) -> AttrDef {
    let mut a = AttrDef::new(name, AttrType::Reference, description);
    a.reference_types = types;
    a
}
fn complex(name: &'static str, description: &'static str, subs: Vec<AttrDef>) -> AttrDef {
    let mut a = AttrDef::new(name, AttrType::Complex, description);
    a.sub_attributes = subs;
    a
}

const DISPLAY: &str = "A human-readable name, primarily used for display purposes.  READ-ONLY.";
const PRIMARY: &str = "A Boolean value indicating the 'primary' or preferred attribute value for this \
                       attribute.  The primary attribute value 'true' MUST appear no more than once.";

/// A multi-valued complex attribute with the RFC 7643 §2.4 default sub-attributes `value`,
/// `display`, `type` and `primary` (emails, phoneNumbers, ims, photos, entitlements, roles,
/// x509Certificates).
fn multi_valued(name: &'static str, description: &'static str, value: AttrDef, types: &'static [&'static str]) -> AttrDef {
    complex(
        name,
        description,
        vec![
            value,
            string("display", DISPLAY),
            string("type", "A label indicating the attribute's function.").canonical(types),
            boolean("primary", PRIMARY),
        ],
    )
    .multi()
}

fn user_schema() -> Schema {
    let name = complex(
        "name",
        "The components of the user's real name.",
        vec![
            string(
                "formatted",
                "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display (e.g., 'Ms. Barbara J Jensen, III').",
            ),
            string(
                "familyName",
                "The family name of the User, or last name in most Western languages (e.g., 'Jensen' given the full name 'Ms. Barbara J Jensen, III').",
            ),
            string(
                "givenName",
                "The given name of the User, or first name in most Western languages (e.g., 'Barbara' given the full name 'Ms. Barbara J Jensen, III').",
            ),
            string("middleName", "The middle name(s) of the User (e.g., 'Jane' given the full name 'Ms. Barbara J Jensen, III')."),
            string(
                "honorificPrefix",
                "The honorific prefix(es) of the User, or title in most Western languages (e.g., 'Ms.' given the full name 'Ms. Barbara J Jensen, III').",
            ),
            string(
                "honorificSuffix",
                "The honorific suffix(es) of the User, or suffix in most Western languages (e.g., 'III' given the full name 'Ms. Barbara J Jensen, III').",
            ),
        ],
    );
    let addresses = complex(
        "addresses",
        "A physical mailing address for this User.",
        vec![
            string("formatted", "The full mailing address, formatted for display or use with a mailing label.  This attribute MAY contain newlines."),
            string("streetAddress", "The full street address component, which may include house number, street name, P.O. box, and multi-line extended street address information.  This attribute MAY contain newlines."),
            string("locality", "The city or locality component."),
            string("region", "The state or region component."),
            string("postalCode", "The zip code or postal code component."),
            string("country", "The country name component."),
            string("type", "A label indicating the attribute's function, e.g., 'work' or 'home'.").canonical(&["work", "home", "other"]),
            // RFC 7643 §4.1.2 lists `primary` for addresses although the §8.7.1 listing omits it.
            boolean("primary", PRIMARY),
        ],
    )
    .multi();
    let groups = complex(
        "groups",
        "A list of groups to which the user belongs, either through direct membership, through nested groups, or dynamically calculated.",
        vec![
            string("value", "The identifier of the User's group."),
            reference("$ref", &["User", "Group"], "The URI of the corresponding 'Group' resource to which the user belongs."),
            string("display", DISPLAY),
            string("type", "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.").canonical(&["direct", "indirect"]),
        ],
    )
    .multi()
    .mutability(Mutability::ReadOnly)
    .all_subs(Mutability::ReadOnly);

    Schema {
        id: USER_SCHEMA,
        name: "User",
        description: "User Account",
        attributes: vec![
            string("userName", "Unique identifier for the User, typically used by the user to directly authenticate to the service provider.  Each User MUST include a non-empty userName value.  This identifier MUST be unique across the service provider's entire set of Users.  REQUIRED.")
                .required()
                .unique(Uniqueness::Server),
            name,
            string("displayName", "The name of the User, suitable for display to end-users.  The name SHOULD be the full name of the User being described, if known."),
            string("nickName", "The casual way to address the user in real life, e.g., 'Bob' or 'Bobby' instead of 'Robert'."),
            reference("profileUrl", &["external"], "A fully qualified URL pointing to a page representing the User's online profile."),
            string("title", "The user's title, such as \"Vice President.\""),
            string("userType", "Used to identify the relationship between the organization and the user.  Typical values used might be 'Contractor', 'Employee', 'Intern', 'Temp', 'External', and 'Unknown', but any value may be used."),
            string("preferredLanguage", "Indicates the User's preferred written or spoken language.  Generally used for selecting a localized user interface; e.g., 'en_US' specifies the language English and country US."),
            string("locale", "Used to indicate the User's default location for purposes of localizing items such as currency, date time format, or numerical representations."),
            string("timezone", "The User's time zone in the 'Olson' time zone database format, e.g., 'America/Los_Angeles'."),
            boolean("active", "A Boolean value indicating the User's administrative status."),
            string("password", "The User's cleartext password.  This attribute is intended to be used as a means to specify an initial password when creating a new User or to reset an existing User's password.")
                .mutability(Mutability::WriteOnly)
                .returned(Returned::Never),
            multi_valued(
                "emails",
                "Email addresses for the user.  The value SHOULD be canonicalized by the service provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'.  Canonical type values of 'work', 'home', and 'other'.",
                string("value", "Email addresses for the user."),
                &["work", "home", "other"],
            ),
            multi_valued(
                "phoneNumbers",
                "Phone numbers for the User.  The value SHOULD be canonicalized by the service provider according to the format specified in RFC 3966, e.g., 'tel:+1-201-555-0123'.  Canonical type values of 'work', 'home', 'mobile', 'fax', 'pager', and 'other'.",
                string("value", "Phone number of the User."),
                &["work", "home", "mobile", "fax", "pager", "other"],
            ),
            multi_valued(
                "ims",
                "Instant messaging addresses for the User.",
                string("value", "Instant messaging address for the User."),
                &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
            ),
            multi_valued(
                "photos",
                "URLs of photos of the User.",
                reference("value", &["external"], "URL of a photo of the User."),
                &["photo", "thumbnail"],
            ),
            addresses,
            groups,
            multi_valued(
                "entitlements",
                "A list of entitlements for the User that represent a thing the User has.",
                string("value", "The value of an entitlement."),
                &[],
            ),
            multi_valued(
                "roles",
                "A list of roles for the User that collectively represent who the User is, e.g., 'Student', 'Faculty'.",
                string("value", "The value of a role."),
                &[],
            ),
            multi_valued(
                "x509Certificates",
                "A list of certificates issued to the User.",
                binary("value", "The value of an X.509 certificate."),
                &[],
            ),
        ],
    }
}

fn enterprise_user_schema() -> Schema {
    Schema {
        id: ENTERPRISE_USER_SCHEMA,
        name: "EnterpriseUser",
        description: "Enterprise User",
        attributes: vec![
            string(
                "employeeNumber",
                "Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or association with an organization.",
            ),
            string("costCenter", "Identifies the name of a cost center."),
            string("organization", "Identifies the name of an organization."),
            string("division", "Identifies the name of a division."),
            string("department", "Identifies the name of a department."),
            complex(
                "manager",
                "The User's manager.  A complex type that optionally allows service providers to represent organizational hierarchy by referencing the 'id' attribute of another User.",
                vec![
                    string("value", "The id of the SCIM resource representing the User's manager."),
                    reference("$ref", &["User"], "The URI of the SCIM resource representing the User's manager."),
                    string("displayName", "The displayName of the User's manager.  OPTIONAL and READ-ONLY.")
                        .mutability(Mutability::ReadOnly),
                ],
            ),
        ],
    }
}

fn group_schema() -> Schema {
    let members = complex(
        "members",
        "A list of members of the Group.",
        vec![
            string("value", "Identifier of the member of this Group."),
            reference("$ref", &["User", "Group"], "The URI corresponding to a SCIM resource that is a member of this Group."),
            string("display", "A human-readable name for the member."),
            string("type", "A label indicating the type of resource, e.g., 'User' or 'Group'.").canonical(&["User", "Group"]),
        ],
    )
    .multi()
    // RFC 7643 §4.2: members may be added and removed, but their sub-attributes are immutable.
    .all_subs(Mutability::Immutable);
    Schema {
        id: GROUP_SCHEMA,
        name: "Group",
        description: "Group",
        attributes: vec![
            // §8.7.1 lists `required: false`, but §4.2 says REQUIRED, and a group without a name
            // cannot be matched by Entra (it matches groups on displayName).
            string("displayName", "A human-readable name for the Group.  REQUIRED.").required(),
            members,
        ],
    }
}

/// RFC 7643 §3 / §3.1: `schemas`, `id`, `externalId` and `meta` belong to every resource but to no
/// schema, so they are not listed in `/Schemas`.
fn common_attributes() -> Vec<AttrDef> {
    vec![
        reference("schemas", &["uri"], "The schema URIs that define the attributes present in the resource.")
            .multi()
            .required()
            .mutability(Mutability::ReadOnly)
            .returned(Returned::Always),
        string("id", "A unique identifier for a SCIM resource as defined by the service provider.")
            .required()
            .case_exact()
            .mutability(Mutability::ReadOnly)
            .returned(Returned::Always)
            .unique(Uniqueness::Server),
        string("externalId", "A String that is an identifier for the resource as defined by the provisioning client.").case_exact(),
        complex(
            "meta",
            "A complex attribute containing resource metadata.",
            vec![
                string("resourceType", "The name of the resource type of the resource.").case_exact(),
                date_time("created", "The \"DateTime\" that the resource was added to the service provider."),
                date_time(
                    "lastModified",
                    "The most recent DateTime that the details of this resource were updated at the service provider.",
                ),
                reference("location", &["uri"], "The URI of the resource being returned."),
                string("version", "The version of the resource being returned.").case_exact(),
            ],
        )
        .mutability(Mutability::ReadOnly)
        .all_subs(Mutability::ReadOnly),
    ]
}

/// A schema (RFC 7643 §7).
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: Vec<AttrDef>,
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&AttrDef> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema as a `/Schemas/{id}` resource.
    pub fn to_json(&self, base_url: &str) -> Value {
        json!({
            "schemas": [SCHEMA_SCHEMA],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": self.attributes.iter().map(AttrDef::to_json).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "Schema",
                "location": format!("{}/Schemas/{}", base(base_url), self.id),
            },
        })
    }
}

struct Registry {
    user: Schema,
    user_extensions: Vec<Schema>,
    group: Schema,
    common: Vec<AttrDef>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    user: user_schema(),
    user_extensions: vec![enterprise_user_schema()],
    group: group_schema(),
    common: common_attributes(),
});

/// Every schema, in the order `/Schemas` lists them.
pub fn all_schemas() -> [&'static Schema; 3] {
    let r = &*REGISTRY;
    [&r.user, &r.user_extensions[0], &r.group]
}

/// `schemas`, `id`, `externalId` and `meta`.
pub fn common_attribute(name: &str) -> Option<&'static AttrDef> {
    REGISTRY.common.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The resource types this server serves (RFC 7643 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    User,
    Group,
}

impl ResourceType {
    pub const ALL: [ResourceType; 2] = [ResourceType::User, ResourceType::Group];

    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    /// The endpoint, relative to the SCIM base URL.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "/Users",
            Self::Group => "/Groups",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::User => "User Account",
            Self::Group => "Group",
        }
    }

    /// `User` or `Group`, ignoring case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The core schema (the resource type's `schema`).
    pub fn schema(self) -> &'static Schema {
        match self {
            Self::User => &REGISTRY.user,
            Self::Group => &REGISTRY.group,
        }
    }

    /// The schema extensions; their attributes live in a container keyed by the schema URN.
    pub fn extensions(self) -> &'static [Schema] {
        match self {
            Self::User => &REGISTRY.user_extensions,
            Self::Group => &[],
        }
    }

    /// The core schema or an extension whose URN is `urn` (URNs compare case-insensitively).
    pub fn schema_by_urn(self, urn: &str) -> Option<&'static Schema> {
        std::iter::once(self.schema()).chain(self.extensions()).find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The extension whose container key is `key`.
    pub fn extension_by_urn(self, key: &str) -> Option<&'static Schema> {
        self.extensions().iter().find(|s| s.id.eq_ignore_ascii_case(key))
    }

    /// A top-level (not in an extension container) attribute: a common one or a core one.
    pub fn top_level_attribute(self, name: &str) -> Option<&'static AttrDef> {
        common_attribute(name).or_else(|| self.schema().attribute(name))
    }

    /// The resource type as a `/ResourceTypes/{name}` resource.
    pub fn to_json(self, base_url: &str) -> Value {
        let mut rt = json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": self.name(),
            "name": self.name(),
            "endpoint": self.endpoint(),
            "description": self.description(),
            "schema": self.schema().id,
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{}/ResourceTypes/{}", base(base_url), self.name()),
            },
        });
        let extensions = self.extensions();
        // Entra's schema discovery wants absent values left out rather than sent empty or null.
        if !extensions.is_empty() {
            rt["schemaExtensions"] = extensions.iter().map(|s| json!({"schema": s.id, "required": false})).collect();
        }
        rt
    }
}

impl std::fmt::Display for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

fn base(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// The `GET /Schemas` body: a ListResponse of every schema.
pub fn schemas_document(base_url: &str) -> Value {
    let all: Vec<Value> = all_schemas().iter().map(|s| s.to_json(base_url)).collect();
    list::list_response(all.len(), 1, all)
}

/// The `GET /Schemas/{id}` body, if `id` names one of our schemas.
pub fn schema_document(base_url: &str, id: &str) -> Option<Value> {
    all_schemas().into_iter().find(|s| s.id.eq_ignore_ascii_case(id)).map(|s| s.to_json(base_url))
}

/// The `GET /ResourceTypes` body.
pub fn resource_types(base_url: &str) -> Value {
    let all: Vec<Value> = ResourceType::ALL.iter().map(|t| t.to_json(base_url)).collect();
    list::list_response(all.len(), 1, all)
}

/// The `GET /ResourceTypes/{name}` body.
pub fn resource_type_document(base_url: &str, name: &str) -> Option<Value> {
    ResourceType::from_name(name).map(|t| t.to_json(base_url))
}

/// An attribute path resolved against a resource type: what it is and where it lives in the JSON
/// wire form.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttr {
    /// The key of the extension container holding the attribute, or `None` for a top-level one.
    pub container: Option<&'static str>,
    /// The attribute (within the container), with canonical name casing.
    pub attr: &'static AttrDef,
    /// The sub-attribute the path names, if any.
    pub sub: Option<&'static AttrDef>,
}

impl ResolvedAttr {
    /// The definition of what the path names: the sub-attribute if there is one.
    pub fn leaf(&self) -> &'static AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The canonical attribute path: `userName`, `name.givenName`,
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
    pub fn path(&self) -> String {
        let mut p = match self.container {
            Some(urn) => format!("{urn}:{}", self.attr.name),
            None => self.attr.name.to_string(),
        };
        if let Some(s) = self.sub {
            p.push('.');
            p.push_str(s.name);
        }
        p
    }

    /// The object holding the attribute: the resource itself or its extension container.
    pub fn holder<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        match self.container {
            None => Some(resource),
            Some(urn) => field(resource, urn),
        }
    }

    /// The attribute's value in `resource`, as stored (an array for multi-valued attributes).
    pub fn raw<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        self.holder(resource).and_then(|h| field(h, self.attr.name))
    }

    /// Every value the path names in `resource`: the elements of a multi-valued attribute (or
    /// their sub-attribute), the value of a singular one. Nulls are skipped.
    pub fn values<'a>(&self, resource: &'a Value) -> Vec<&'a Value> {
        let Some(v) = self.raw(resource) else { return Vec::new() };
        let elements: Vec<&Value> = match v {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        elements
            .into_iter()
            .filter_map(|e| match self.sub {
                Some(s) => field(e, s.name),
                None => Some(e),
            })
            .filter(|v| !v.is_null())
            .collect()
    }
}

/// Resolves an attribute path (RFC 7644 §3.10) for a resource type: `userName`, `name.givenName`,
/// optionally prefixed with a schema URN (`urn:ietf:params:scim:schemas:core:2.0:User:userName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`). Names are
/// case-insensitive. The error is a detail message; callers wrap it in the `scimType` that fits
/// (`invalidFilter`, `invalidPath`, ...).
///
/// RFC 7644 §3.10 says extension attributes MUST be qualified with their schema URN, but Entra
/// sends `manager` unqualified (its SCIM tutorial, "Query the value of a reference attribute" and
/// the PATCH in "Request from Microsoft Entra ID to an SCIM endpoint to update a user"), so an
/// unqualified name that is neither common nor core is looked up in the extensions. No extension
/// attribute shares a name with a core one, so this is unambiguous.
pub fn resolve(rt: ResourceType, path: &str) -> Result<ResolvedAttr, String> {
    let (schema, rest) = split_urn(rt, path)?;
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err(format!("'{path}' does not name an attribute"));
    }
    let found = match schema {
        Some(s) if s.id == rt.schema().id => common_attribute(name).or_else(|| s.attribute(name)).map(|a| (None, a)),
        Some(ext) => ext.attribute(name).map(|a| (Some(ext.id), a)),
        None => rt
            .top_level_attribute(name)
            .map(|a| (None, a))
            .or_else(|| rt.extensions().iter().find_map(|ext| ext.attribute(name).map(|a| (Some(ext.id), a)))),
    };
    let Some((container, attr)) = found else {
        return Err(match schema {
            Some(s) => format!("'{name}' is not an attribute of {}", s.id),
            None => format!("'{name}' is not an attribute of {rt} resources"),
        });
    };
    let sub = match sub {
        None => None,
        Some(s) if s.contains('.') => {
            return Err(format!("'{path}' is too deep: sub-attributes have no sub-attributes"));
        }
        Some(s) if !attr.is_complex() => {
            return Err(format!("'{}' is a {} and has no sub-attribute '{s}'", attr.name, attr.ty.as_str()));
        }
        Some(s) => Some(attr.sub_attribute(s).ok_or_else(|| {
            let known: Vec<&str> = attr.sub_attributes.iter().map(|a| a.name).collect();
            format!("'{}' has no sub-attribute '{s}' (it has {})", attr.name, known.join(", "))
        })?),
    };
    Ok(ResolvedAttr { container, attr, sub })
}

/// Splits a leading schema URN off an attribute path. URNs contain dots ("2.0") and colons, so the
/// split is by matching the resource type's schema URNs, not by searching for separators.
fn split_urn(rt: ResourceType, path: &str) -> Result<(Option<&'static Schema>, &str), String> {
    let is_urn = path.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    if !is_urn {
        return Ok((None, path));
    }
    let schemas = std::iter::once(rt.schema()).chain(rt.extensions());
    for s in schemas {
        let prefix_matches = path.get(..s.id.len()).is_some_and(|p| p.eq_ignore_ascii_case(s.id));
        if prefix_matches && let Some(rest) = path[s.id.len()..].strip_prefix(':') {
            return Ok((Some(s), rest));
        }
    }
    let known: Vec<&str> = std::iter::once(rt.schema()).chain(rt.extensions()).map(|s| s.id).collect();
    Err(format!("'{path}' does not start with a schema of {rt} resources ({})", known.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://infra.example.com/api/scim/v2";

    fn attr_json<'a>(schema: &'a Value, name: &str) -> &'a Value {
        schema["attributes"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()
    }

    #[test]
    fn schemas_document_lists_all_three_schemas() {
        let doc = schemas_document(&format!("{BASE}/"));
        assert_eq!(doc["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
        assert_eq!(doc["totalResults"], 3);
        assert_eq!(doc["startIndex"], 1);
        assert_eq!(doc["itemsPerPage"], 3);
        let ids: Vec<&str> = doc["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA]);
        for r in doc["Resources"].as_array().unwrap() {
            assert_eq!(r["schemas"], json!([SCHEMA_SCHEMA]));
            assert_eq!(r["meta"]["resourceType"], "Schema");
            // The trailing slash of the base URL does not double up.
            assert_eq!(r["meta"]["location"], format!("{BASE}/Schemas/{}", r["id"].as_str().unwrap()));
        }
    }

    #[test]
    fn schema_document_looks_up_by_id() {
        let s = schema_document(BASE, ENTERPRISE_USER_SCHEMA).unwrap();
        assert_eq!(s["name"], "EnterpriseUser");
        assert!(schema_document(BASE, &USER_SCHEMA.to_uppercase()).is_some());
        assert!(schema_document(BASE, "urn:ietf:params:scim:schemas:core:2.0:Nope").is_none());
    }

    #[test]
    fn user_name_is_described_as_in_rfc_7643() {
        let user = schema_document(BASE, USER_SCHEMA).unwrap();
        let mut user_name = attr_json(&user, "userName").clone();
        user_name.as_object_mut().unwrap().remove("description");
        assert_eq!(
            user_name,
            json!({"name": "userName", "type": "string", "multiValued": false, "required": true,
                   "caseExact": false, "mutability": "readWrite", "returned": "default", "uniqueness": "server"})
        );
    }

    #[test]
    fn user_schema_has_every_core_attribute() {
        let user = ResourceType::User.schema();
        let names: Vec<&str> = user.attributes.iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
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
                "x509Certificates"
            ]
        );
        let name_subs: Vec<&str> = user.attribute("name").unwrap().sub_attributes.iter().map(|a| a.name).collect();
        assert_eq!(name_subs, ["formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"]);
        let address_subs: Vec<&str> = user.attribute("addresses").unwrap().sub_attributes.iter().map(|a| a.name).collect();
        assert_eq!(address_subs, ["formatted", "streetAddress", "locality", "region", "postalCode", "country", "type", "primary"]);
        for multi in ["emails", "phoneNumbers", "ims", "photos", "entitlements", "roles", "x509Certificates"] {
            let a = user.attribute(multi).unwrap();
            assert!(a.multi_valued && a.is_complex(), "{multi}");
            let subs: Vec<&str> = a.sub_attributes.iter().map(|s| s.name).collect();
            assert_eq!(subs, ["value", "display", "type", "primary"], "{multi}");
        }
    }

    #[test]
    fn characteristics_follow_the_rfc() {
        let user = ResourceType::User.schema();
        let password = user.attribute("password").unwrap();
        assert_eq!((password.mutability, password.returned), (Mutability::WriteOnly, Returned::Never));
        let active = user.attribute("active").unwrap();
        assert_eq!(active.ty, AttrType::Boolean);
        let emails = user.attribute("emails").unwrap();
        assert_eq!(emails.sub_attribute("type").unwrap().canonical_values, ["work", "home", "other"]);
        assert_eq!(
            user.attribute("phoneNumbers").unwrap().sub_attribute("type").unwrap().canonical_values,
            ["work", "home", "mobile", "fax", "pager", "other"]
        );
        assert_eq!(user.attribute("photos").unwrap().sub_attribute("value").unwrap().ty, AttrType::Reference);
        assert_eq!(user.attribute("x509Certificates").unwrap().sub_attribute("value").unwrap().ty, AttrType::Binary);
        let groups = user.attribute("groups").unwrap();
        assert_eq!(groups.mutability, Mutability::ReadOnly);
        let group_subs: Vec<(&str, Mutability)> = groups.sub_attributes.iter().map(|s| (s.name, s.mutability)).collect();
        assert_eq!(
            group_subs,
            [
                ("value", Mutability::ReadOnly),
                ("$ref", Mutability::ReadOnly),
                ("display", Mutability::ReadOnly),
                ("type", Mutability::ReadOnly)
            ]
        );
        assert_eq!(groups.sub_attribute("$ref").unwrap().reference_types, ["User", "Group"]);

        let manager = ResourceType::User.extensions()[0].attribute("manager").unwrap();
        assert_eq!(manager.sub_attribute("displayName").unwrap().mutability, Mutability::ReadOnly);
        assert_eq!(manager.sub_attribute("$ref").unwrap().reference_types, ["User"]);
        assert_eq!(manager.sub_attribute("value").unwrap().mutability, Mutability::ReadWrite);

        let members = ResourceType::Group.schema().attribute("members").unwrap();
        assert_eq!(members.mutability, Mutability::ReadWrite);
        assert_eq!(members.sub_attribute("value").unwrap().mutability, Mutability::Immutable);
        assert_eq!(members.sub_attribute("$ref").unwrap().reference_types, ["User", "Group"]);

        let id = common_attribute("id").unwrap();
        assert!(id.case_exact);
        assert_eq!((id.mutability, id.returned), (Mutability::ReadOnly, Returned::Always));
        assert!(common_attribute("externalId").unwrap().case_exact);
        assert_eq!(common_attribute("meta").unwrap().sub_attribute("created").unwrap().ty, AttrType::DateTime);
    }

    #[test]
    fn attribute_json_has_sub_attributes_canonical_values_and_reference_types() {
        let user = schema_document(BASE, USER_SCHEMA).unwrap();
        let emails = attr_json(&user, "emails");
        assert_eq!(emails["multiValued"], true);
        assert_eq!(emails["type"], "complex");
        let ty = emails["subAttributes"].as_array().unwrap().iter().find(|s| s["name"] == "type").unwrap();
        assert_eq!(ty["canonicalValues"], json!(["work", "home", "other"]));
        assert_eq!(attr_json(&user, "profileUrl")["referenceTypes"], json!(["external"]));
        assert!(attr_json(&user, "userName").get("subAttributes").is_none());
        assert!(attr_json(&user, "userName").get("canonicalValues").is_none());
        // Common attributes are not part of any schema (RFC 7643 §3.1).
        assert!(user["attributes"].as_array().unwrap().iter().all(|a| a["name"] != "id"));
    }

    #[test]
    fn resource_types_list_user_with_optional_enterprise_extension_and_group() {
        let doc = resource_types(BASE);
        assert_eq!(doc["totalResults"], 2);
        let user = &doc["Resources"][0];
        assert_eq!(
            *user,
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA], "id": "User", "name": "User", "endpoint": "/Users",
                "description": "User Account", "schema": USER_SCHEMA,
                "schemaExtensions": [{"schema": ENTERPRISE_USER_SCHEMA, "required": false}],
                "meta": {"resourceType": "ResourceType", "location": format!("{BASE}/ResourceTypes/User")}
            })
        );
        let group = &doc["Resources"][1];
        assert_eq!(group["endpoint"], "/Groups");
        assert_eq!(group["schema"], GROUP_SCHEMA);
        assert!(group.get("schemaExtensions").is_none());
        assert_eq!(resource_type_document(BASE, "group").unwrap()["id"], "Group");
        assert!(resource_type_document(BASE, "Device").is_none());
    }

    fn resolved(rt: ResourceType, path: &str) -> (Option<&'static str>, &'static str, Option<&'static str>, String) {
        let r = resolve(rt, path).unwrap();
        (r.container, r.attr.name, r.sub.map(|s| s.name), r.path())
    }

    #[test]
    fn resolves_core_paths_case_insensitively_to_canonical_names() {
        assert_eq!(resolved(ResourceType::User, "USERNAME"), (None, "userName", None, "userName".into()));
        assert_eq!(resolved(ResourceType::User, "name.GivenName"), (None, "name", Some("givenName"), "name.givenName".into()));
        assert_eq!(
            resolved(ResourceType::User, "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            (None, "name", Some("givenName"), "name.givenName".into())
        );
        assert_eq!(
            resolved(ResourceType::User, "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:userName"),
            (None, "userName", None, "userName".into())
        );
        assert_eq!(resolved(ResourceType::User, "emails.value").3, "emails.value");
        assert_eq!(resolved(ResourceType::Group, "members.$ref").3, "members.$ref");
        assert_eq!(resolved(ResourceType::Group, "displayName").3, "displayName");
    }

    #[test]
    fn resolves_common_attributes() {
        assert_eq!(resolved(ResourceType::User, "id").1, "id");
        assert_eq!(resolved(ResourceType::Group, "EXTERNALID").1, "externalId");
        assert_eq!(resolved(ResourceType::User, "meta.lastModified").3, "meta.lastModified");
        assert_eq!(resolved(ResourceType::User, "schemas").1, "schemas");
    }

    #[test]
    fn resolves_enterprise_paths_into_the_extension_container() {
        let department = format!("{ENTERPRISE_USER_SCHEMA}:department");
        assert_eq!(resolved(ResourceType::User, &department), (Some(ENTERPRISE_USER_SCHEMA), "department", None, department.clone()));
        let manager_value = format!("{ENTERPRISE_USER_SCHEMA}:manager.value");
        assert_eq!(
            resolved(ResourceType::User, &manager_value),
            (Some(ENTERPRISE_USER_SCHEMA), "manager", Some("value"), manager_value.clone())
        );
        // Entra's unqualified `manager`.
        assert_eq!(resolved(ResourceType::User, "manager").3, format!("{ENTERPRISE_USER_SCHEMA}:manager"));
        assert_eq!(resolved(ResourceType::User, "employeeNumber").0, Some(ENTERPRISE_USER_SCHEMA));
    }

    #[test]
    fn resolve_explains_what_is_wrong() {
        fn err(rt: ResourceType, p: &str) -> String {
            resolve(rt, p).unwrap_err()
        }
        assert!(err(ResourceType::User, "nope").contains("not an attribute of User"));
        assert!(err(ResourceType::Group, "userName").contains("not an attribute of Group"));
        assert!(err(ResourceType::User, "name.nope").contains("no sub-attribute 'nope'"));
        assert!(err(ResourceType::User, "userName.x").contains("is a string"));
        assert!(err(ResourceType::User, "name.givenName.x").contains("too deep"));
        assert!(err(ResourceType::User, "").contains("does not name an attribute"));
        assert!(err(ResourceType::User, "urn:example:custom:User:tag").contains("does not start with a schema"));
        assert!(err(ResourceType::Group, &format!("{ENTERPRISE_USER_SCHEMA}:department")).contains("does not start"));
        assert!(err(ResourceType::User, &format!("{ENTERPRISE_USER_SCHEMA}:userName")).contains("not an attribute of"));
        // A URN with multi-byte characters where a schema prefix would end must not panic.
        assert!(resolve(ResourceType::User, "urn:ietf:params:scim:schemas:core:2.0:Üser:x").is_err());
    }

    #[test]
    fn values_reads_the_wire_form() {
        let user = json!({
            "userName": "bjensen",
            "emails": [{"value": "a@example.com", "type": "work"}, {"value": "b@example.com"}, null],
            ENTERPRISE_USER_SCHEMA: {"manager": {"value": "m1"}},
        });
        let get = |p: &str| resolve(ResourceType::User, p).unwrap().values(&user).into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(get("userName"), [json!("bjensen")]);
        assert_eq!(get("emails.value"), [json!("a@example.com"), json!("b@example.com")]);
        assert_eq!(get("emails.type"), [json!("work")]);
        assert_eq!(get("emails").len(), 2);
        assert_eq!(get("manager.value"), [json!("m1")]);
        assert!(get("title").is_empty());
    }
}
