//! Filters (RFC 7644 §3.4.2.2, ABNF in Figure 1) and the PATCH path grammar that reuses them
//! (§3.5.2: `PATH = attrPath / valuePath [subAttr]`).
//!
//! A filter is parsed for one resource type: attribute names are resolved against its schemas while
//! parsing, so unknown attributes and operator/type mismatches (`active gt true`) are reported as
//! `invalidFilter` up front and evaluation ([`Filter::matches`]) cannot fail.
//!
//! Beyond Figure 1 we accept, because real clients send them:
//! - `emails[type eq "work"].value eq "x"`: a valuePath followed by a sub-attribute and a
//!   comparison. Entra's SCIM tutorial requires `/Users` to answer exactly this filter when email
//!   is a matching attribute ("Any attributes that are considered for user uniqueness must be
//!   usable as part of a filtered query").
//! - `not` without parentheses (`not title pr`), keeping its precedence above `and`.
//! - Any amount of whitespace where the ABNF has one SP.
//! - `x eq null` / `x ne null`, meaning "x has no value" / "x has a value".
//!
//! An unquoted word as a value (`externalId eq jyoung`, an illustration in Entra's tutorial) is
//! refused: it is not JSON, and guessing would turn typos into silent non-matches.

use serde_json::{Number, Value};

use super::error::ScimError;
use super::schema::{AttrDef, AttrType, ResolvedAttr, ResourceType, resolve};
use super::values::{self, field, fold, is_empty, parse_datetime};

/// Filter errors are [`ScimError`]s with `scimType` `invalidFilter` (status 400).
pub type FilterError = ScimError;

/// Nesting deeper than this is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 64;
/// So is a filter with more attribute expressions than this: `a or b or c ...` builds a tree as
/// deep as it is long, and evaluating (and dropping) it recurses that deep. IdPs send one or two.
const MAX_TERMS: usize = 256;

/// RFC 7644 Table 3 attribute operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Lt,
    Ge,
    Le,
}

impl CompareOp {
    fn from_word(w: &str) -> Option<Self> {
        const OPS: [(&str, CompareOp); 9] = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("lt", CompareOp::Lt),
            ("ge", CompareOp::Ge),
            ("le", CompareOp::Le),
        ];
        OPS.iter().find(|(name, _)| name.eq_ignore_ascii_case(w)).map(|(_, op)| *op)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "eq",
            Self::Ne => "ne",
            Self::Co => "co",
            Self::Sw => "sw",
            Self::Ew => "ew",
            Self::Gt => "gt",
            Self::Lt => "lt",
            Self::Ge => "ge",
            Self::Le => "le",
        }
    }

    fn is_ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Lt | Self::Ge | Self::Le)
    }

    fn is_substring(self) -> bool {
        matches!(self, Self::Co | Self::Sw | Self::Ew)
    }
}

/// What an attribute expression checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `pr`
    Present,
    /// `eq`, `ne`, ... with the JSON comparison value.
    Compare(CompareOp, Value),
}

/// The attribute an expression tests.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrRef {
    /// An attribute of the resource (top-level filters).
    Resource(ResolvedAttr),
    /// A sub-attribute of the element being tested (inside `emails[...]`).
    Element(&'static AttrDef),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Attr {
        attr: AttrRef,
        test: Test,
    },
    /// `emails[type eq "work"]`: some element of the multi-valued `attr` matches `filter`, and,
    /// for Entra's `emails[type eq "work"].value eq "x"` form, its sub-attribute passes `then`.
    ValuePath {
        attr: ResolvedAttr,
        filter: Box<Filter>,
        then: Option<(&'static AttrDef, Test)>,
    },
}

/// A PATCH target (RFC 7644 §3.5.2): an attribute, optionally narrowed to the elements of a
/// multi-valued attribute that match `filter`. For `emails[type eq "work"].value`, `attr.sub` is
/// `value` and `filter` is `type eq "work"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub attr: ResolvedAttr,
    /// Element filter; evaluate it with [`Filter::matches`] on each element.
    pub filter: Option<Filter>,
}

/// Parses a `filter` query parameter for resources of type `rt`.
pub fn parse(input: &str, rt: ResourceType) -> Result<Filter, FilterError> {
    let parsed = Parser::new(input, rt).and_then(|mut p| {
        if p.peek().is_none() {
            return Err("the filter is empty".to_string());
        }
        let f = p.or_expr(Scope::Resource)?;
        p.end()?;
        Ok(f)
    });
    parsed.map_err(|e| ScimError::invalid_filter(format!("invalid filter '{input}': {e}")))
}

/// Parses a PATCH `path` (or a key of a path-less PATCH value) for resources of type `rt`.
pub fn parse_path(input: &str, rt: ResourceType) -> Result<Path, ScimError> {
    let parsed = Parser::new(input, rt).and_then(|mut p| {
        let Some(Tok::Word(word)) = p.next() else {
            return Err("a path starts with an attribute name".to_string());
        };
        let path = if p.peek() == Some(&Tok::LBracket) {
            let (attr, filter, sub) = p.value_path(&word)?;
            Path { attr: ResolvedAttr { sub, ..attr }, filter: Some(filter) }
        } else {
            Path { attr: resolve(rt, &word)?, filter: None }
        };
        p.end()?;
        Ok(path)
    });
    parsed.map_err(|e| ScimError::invalid_path(format!("invalid path '{input}': {e}")))
}

impl Filter {
    /// Whether `node` matches. `node` is the resource for filters from [`parse`], and one element
    /// of the multi-valued attribute for the element filter of a [`Path`].
    pub fn matches(&self, node: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(node) && b.matches(node),
            Filter::Or(a, b) => a.matches(node) || b.matches(node),
            Filter::Not(f) => !f.matches(node),
            Filter::Attr { attr: AttrRef::Resource(r), test } => test.eval(r.leaf(), &r.values(node)),
            Filter::Attr { attr: AttrRef::Element(sub), test } => test.eval(sub, &element_values(node, sub)),
            Filter::ValuePath { attr, filter, then } => attr.values(node).into_iter().any(|element| {
                filter.matches(element) && then.as_ref().is_none_or(|(sub, test)| test.eval(sub, &element_values(element, sub)))
            }),
        }
    }

    /// For an element filter made only of `eq` comparisons joined by `and` (`type eq "work"`), the
    /// sub-attribute values an element must have to match. PATCH uses it to create the element
    /// Entra means by `emails[type eq "work"].value` when there is none yet.
    pub fn equality_terms(&self) -> Option<Vec<(&'static AttrDef, Value)>> {
        match self {
            Filter::Attr { attr: AttrRef::Element(sub), test: Test::Compare(CompareOp::Eq, v) } if !v.is_null() => {
                Some(vec![(*sub, v.clone())])
            }
            Filter::And(a, b) => {
                let mut terms = a.equality_terms()?;
                terms.extend(b.equality_terms()?);
                Some(terms)
            }
            _ => None,
        }
    }
}

/// The value of sub-attribute `sub` of one element, as a list like [`ResolvedAttr::values`].
fn element_values<'a>(element: &'a Value, sub: &AttrDef) -> Vec<&'a Value> {
    field(element, sub.name).filter(|v| !v.is_null()).into_iter().collect()
}

impl Test {
    /// RFC 7644 §3.4.2.2: a multi-valued attribute matches if any of its values matches.
    fn eval(&self, leaf: &AttrDef, values: &[&Value]) -> bool {
        match self {
            Test::Present => values.iter().any(|v| !is_empty(v)),
            // Our extension: `eq null` is "no value", `ne null` is "has a value".
            Test::Compare(op, Value::Null) => {
                let present = values.iter().any(|v| !is_empty(v));
                if *op == CompareOp::Eq { !present } else { present }
            }
            // An absent attribute is not equal to anything, so `ne` matches it (as `not (x eq v)`).
            Test::Compare(CompareOp::Ne, _) if values.is_empty() => true,
            Test::Compare(op, expected) => values.iter().any(|v| compare_one(leaf, *op, v, expected)),
        }
    }
}

fn compare_one(leaf: &AttrDef, op: CompareOp, actual: &Value, expected: &Value) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if op.is_substring() {
        let (Some(a), Some(e)) = (actual.as_str(), expected.as_str()) else { return false };
        let (a, e) = (fold(leaf, a), fold(leaf, e));
        return match op {
            CompareOp::Co => a.contains(e.as_ref()),
            CompareOp::Sw => a.starts_with(e.as_ref()),
            _ => a.ends_with(e.as_ref()),
        };
    }
    let order = values::compare(leaf, actual, expected);
    match op {
        CompareOp::Eq => order == Some(Equal),
        CompareOp::Ne => order != Some(Equal),
        CompareOp::Gt => order == Some(Greater),
        CompareOp::Ge => matches!(order, Some(Greater | Equal)),
        CompareOp::Lt => order == Some(Less),
        _ => matches!(order, Some(Less | Equal)),
    }
}

/// For `filter` from [`parse`]: an attribute and string value that every matching resource must
/// have, so the server can look candidates up in an index instead of scanning. Covers
/// `userName eq "..."`, `externalId eq`, `id eq`, `displayName eq`, `emails.value eq`,
/// `emails[type eq "work"].value eq` (as `emails.value`), and an `and` where either side is one of
/// these. The attribute is the canonical path (`userName`, `emails.value`,
/// `urn:...:enterprise:2.0:User:employeeNumber`); look it up with [`resolve`] to learn whether the
/// comparison is case-exact. It only narrows: the caller must still run [`Filter::matches`].
pub fn equality_hint(filter: &Filter) -> Option<(String, String)> {
    match filter {
        Filter::Attr { attr: AttrRef::Resource(r), test: Test::Compare(CompareOp::Eq, Value::String(v)) } => Some((r.path(), v.clone())),
        Filter::ValuePath { attr, then: Some((sub, Test::Compare(CompareOp::Eq, Value::String(v)))), .. } => {
            Some((ResolvedAttr { sub: Some(*sub), ..attr.clone() }.path(), v.clone()))
        }
        Filter::And(a, b) => equality_hint(a).or_else(|| equality_hint(b)),
        _ => None,
    }
}

// ---- Lexer -------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// An attribute path, keyword or operator; a leading `.` is the subAttr after `]`.
    Word(String),
    Str(String),
    Num(Number),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("the string {}", Value::String(s.clone())),
            Tok::Num(n) => format!("the number {n}"),
        }
    }
}

fn is_word_char(c: char) -> bool {
    // nameChar of Figure 1, plus what URNs (":" and ".") and `$ref` need.
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '$')
}

fn lex(input: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                toks.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    _ => Tok::RBracket,
                });
            }
            '"' => {
                chars.next();
                let mut escaped = false;
                let end = chars.by_ref().find_map(|(i, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes.then_some(i)
                });
                let Some(end) = end else {
                    return Err(format!("the string starting at offset {start} is not terminated"));
                };
                let literal = &input[start..=end];
                let s = serde_json::from_str::<String>(literal).map_err(|_| format!("{literal} is not a valid JSON string"))?;
                toks.push(Tok::Str(s));
            }
            c if c == '-' || c.is_ascii_digit() => {
                let text = take_while(&mut chars, input, start, |c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                let n = serde_json::from_str::<Number>(text).map_err(|_| format!("'{text}' is not a JSON number"))?;
                toks.push(Tok::Num(n));
            }
            c if is_word_char(c) => toks.push(Tok::Word(take_while(&mut chars, input, start, is_word_char).to_string())),
            other => return Err(format!("unexpected character '{other}' at offset {start}")),
        }
    }
    Ok(toks)
}

fn take_while<'a>(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    input: &'a str,
    start: usize,
    keep: impl Fn(char) -> bool,
) -> &'a str {
    let mut end = start;
    while let Some(&(i, c)) = chars.peek() {
        if !keep(c) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    &input[start..end]
}

// ---- Parser ------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Scope {
    Resource,
    /// Inside `attr[...]`: names are sub-attributes of `attr`.
    Element(&'static AttrDef),
}

struct Parser {
    toks: std::vec::IntoIter<Tok>,
    peeked: Option<Tok>,
    rt: ResourceType,
    depth: usize,
    terms: usize,
}

impl Parser {
    fn new(input: &str, rt: ResourceType) -> Result<Self, String> {
        let mut toks = lex(input)?.into_iter();
        let peeked = toks.next();
        Ok(Self { toks, peeked, rt, depth: 0, terms: 0 })
    }

    fn peek(&self) -> Option<&Tok> {
        self.peeked.as_ref()
    }

    fn next(&mut self) -> Option<Tok> {
        std::mem::replace(&mut self.peeked, self.toks.next())
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let is_kw = matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw));
        if is_kw {
            self.next();
        }
        is_kw
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == *want => Ok(()),
            Some(t) => Err(format!("expected {what}, found {}", t.describe())),
            None => Err(format!("expected {what}, but the input ended")),
        }
    }

    fn end(&mut self) -> Result<(), String> {
        match self.next() {
            None => Ok(()),
            Some(t) => Err(format!("unexpected {} (a missing 'and'/'or', or an unbalanced parenthesis?)", t.describe())),
        }
    }

    // FILTER with precedence: or < and < not < grouping.
    fn or_expr(&mut self, scope: Scope) -> Result<Filter, String> {
        let mut left = self.and_expr(scope)?;
        while self.eat_keyword("or") {
            left = Filter::Or(Box::new(left), Box::new(self.and_expr(scope)?));
        }
        Ok(left)
    }

    fn and_expr(&mut self, scope: Scope) -> Result<Filter, String> {
        let mut left = self.unary(scope)?;
        while self.eat_keyword("and") {
            left = Filter::And(Box::new(left), Box::new(self.unary(scope)?));
        }
        Ok(left)
    }

    fn unary(&mut self, scope: Scope) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the filter nests deeper than {MAX_DEPTH} levels"));
        }
        let f = if self.eat_keyword("not") { Filter::Not(Box::new(self.unary(scope)?)) } else { self.primary(scope)? };
        self.depth -= 1;
        Ok(f)
    }

    fn primary(&mut self, scope: Scope) -> Result<Filter, String> {
        match self.next() {
            Some(Tok::LParen) => {
                let f = self.or_expr(scope)?;
                self.expect(&Tok::RParen, "')'")?;
                Ok(f)
            }
            Some(Tok::Word(w)) if !w.starts_with('.') => self.attr_expr(&w, scope),
            Some(t) => Err(format!("expected an attribute name, '(' or 'not', found {}", t.describe())),
            None => Err("expected an attribute name, '(' or 'not', but the input ended".into()),
        }
    }

    fn attr_expr(&mut self, name: &str, scope: Scope) -> Result<Filter, String> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(format!("the filter has more than {MAX_TERMS} attribute expressions"));
        }
        if self.peek() == Some(&Tok::LBracket) {
            if let Scope::Element(parent) = scope {
                return Err(format!("value filters cannot be nested inside {}[...]", parent.name));
            }
            let (attr, filter, sub) = self.value_path(name)?;
            let then = match sub {
                None => None,
                Some(sub) => Some((sub, self.test(sub, &format!("{name}[...].{}", sub.name))?)),
            };
            return Ok(Filter::ValuePath { attr, filter: Box::new(filter), then });
        }
        match scope {
            Scope::Resource => {
                let mut r = resolve(self.rt, name)?;
                let test = self.test_attr(&mut r, name)?;
                Ok(Filter::Attr { attr: AttrRef::Resource(r), test })
            }
            Scope::Element(parent) => {
                let sub = parent.sub_attribute(name).ok_or_else(|| {
                    let known: Vec<&str> = parent.sub_attributes.iter().map(|s| s.name).collect();
                    format!("'{name}' is not a sub-attribute of {} (it has {})", parent.name, known.join(", "))
                })?;
                let test = self.test(sub, name)?;
                Ok(Filter::Attr { attr: AttrRef::Element(sub), test })
            }
        }
    }

    /// `attr[filter]` and an optional `.sub`: the part that filters and PATCH paths share. The
    /// current token is `[`.
    fn value_path(&mut self, name: &str) -> Result<(ResolvedAttr, Filter, Option<&'static AttrDef>), String> {
        let attr = resolve(self.rt, name)?;
        if attr.sub.is_some() || !attr.attr.multi_valued || !attr.attr.is_complex() {
            return Err(format!("'{name}[...]' needs a multi-valued complex attribute such as emails or members"));
        }
        self.expect(&Tok::LBracket, "'['")?;
        let filter = self.or_expr(Scope::Element(attr.attr))?;
        self.expect(&Tok::RBracket, &format!("']' to close {name}["))?;
        let sub = match self.peek() {
            Some(Tok::Word(w)) if w.starts_with('.') => {
                let sub_name = w[1..].to_string();
                self.next();
                Some(
                    attr.attr
                        .sub_attribute(&sub_name)
                        .ok_or_else(|| format!("'{sub_name}' is not a sub-attribute of {}", attr.attr.name))?,
                )
            }
            _ => None,
        };
        Ok((attr, filter, sub))
    }

    /// The test on a resource attribute. Comparing a complex attribute compares its `value`
    /// sub-attribute: RFC 7644 §3.4.2.2's own example is `emails co "example.com"`, and Entra asks
    /// `manager eq "<id>"` and `members eq "<id>"`.
    fn test_attr(&mut self, r: &mut ResolvedAttr, name: &str) -> Result<Test, String> {
        let is_pr = matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr"));
        if !is_pr && r.sub.is_none() && r.attr.is_complex() {
            r.sub = Some(r.attr.sub_attribute("value").ok_or_else(|| {
                format!(
                    "'{name}' is complex; compare one of its sub-attributes, e.g. {}.{}",
                    r.attr.name,
                    r.attr.sub_attributes.first().map_or("value", |s| s.name)
                )
            })?);
        }
        self.test(r.leaf(), name)
    }

    fn test(&mut self, leaf: &AttrDef, name: &str) -> Result<Test, String> {
        let op_word = match self.next() {
            Some(Tok::Word(w)) => w,
            Some(t) => return Err(format!("expected an operator after '{name}', found {}", t.describe())),
            None => return Err(format!("expected an operator after '{name}', but the input ended")),
        };
        if op_word.eq_ignore_ascii_case("pr") {
            return Ok(Test::Present);
        }
        let op = CompareOp::from_word(&op_word)
            .ok_or_else(|| format!("unknown operator '{op_word}' after '{name}'; use eq, ne, co, sw, ew, gt, lt, ge, le or pr"))?;
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Num(n)) => Value::Number(n),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            Some(t) => {
                return Err(format!(
                    "expected a value after '{name} {}' (a \"quoted string\", a number, true, false or null), found {}",
                    op.as_str(),
                    t.describe()
                ));
            }
            None => return Err(format!("expected a value after '{name} {}', but the input ended", op.as_str())),
        };
        check_comparison(leaf, op, &value, name)?;
        Ok(Test::Compare(op, value))
    }
}

/// Refuses comparisons that RFC 7644 §3.4.2.2 rules out or that cannot mean anything.
fn check_comparison(leaf: &AttrDef, op: CompareOp, value: &Value, name: &str) -> Result<(), String> {
    let ty = leaf.ty.as_str();
    let refuse = |why: &str| -> Result<(), String> { Err(format!("'{name} {} {value}': {why}", op.as_str())) };
    if value.is_null() {
        return if matches!(op, CompareOp::Eq | CompareOp::Ne) { Ok(()) } else { refuse("null only works with eq and ne") };
    }
    match leaf.ty {
        AttrType::Boolean if op.is_ordering() || op.is_substring() => refuse("boolean attributes support only eq and ne"),
        AttrType::Boolean if !value.is_boolean() => refuse("compare a boolean attribute with true or false"),
        AttrType::Binary if op.is_ordering() => refuse("binary attributes cannot be ordered"),
        AttrType::Integer | AttrType::Decimal if op.is_substring() => refuse("numbers support eq, ne, gt, ge, lt and le"),
        AttrType::Integer | AttrType::Decimal if !value.is_number() => refuse(&format!("{ty} attributes compare with numbers")),
        AttrType::DateTime if op.is_substring() => refuse("dateTime attributes support eq, ne, gt, ge, lt and le"),
        AttrType::DateTime if value.as_str().and_then(parse_datetime).is_none() => {
            refuse("compare a dateTime with a quoted RFC 3339 timestamp such as \"2011-05-13T04:42:34Z\"")
        }
        AttrType::String | AttrType::Reference | AttrType::Binary if !value.is_string() => {
            refuse(&format!("{ty} attributes compare with a \"quoted string\""))
        }
        AttrType::Complex => refuse("complex attributes support only pr; compare a sub-attribute"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "bjensen",
            "userName": "bjensen@example.com",
            "name": {"familyName": "O'Malley", "givenName": "Barbara", "middleName": ""},
            "displayName": "Barbara \"Babs\" Jensen",
            "title": "Tour Guide",
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "ims": [{"value": "babs@foo.com", "type": "xmpp"}],
            "phoneNumbers": [],
            "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z", "lastModified": "2011-05-13T04:42:34Z"},
            ENTERPRISE_USER_SCHEMA: {"department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}
        })
    }

    fn group() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
            "displayName": "Test SCIMv2",
            "members": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]
        })
    }

    fn check(f: &str) -> bool {
        parse(f, ResourceType::User).unwrap_or_else(|e| panic!("{f}: {}", e.detail)).matches(&user())
    }

    fn error(f: &str) -> String {
        let e = parse(f, ResourceType::User).expect_err(f);
        assert_eq!((e.status, e.scim_type), (400, Some("invalidFilter")), "{f}");
        e.detail
    }

    #[test]
    fn rfc_7644_examples_parse_and_evaluate() {
        // The example filters of RFC 7644 §3.4.2.2, evaluated against a user like the RFC's bjensen.
        let cases = [
            (r#"userName eq "bjensen@example.com""#, true),
            (r#"name.familyName co "O'Malley""#, true),
            (r#"userName sw "J""#, false),
            (r#"userName sw "B""#, true),
            (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b""#, true),
            ("title pr", true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified le "2011-05-13T04:42:34Z""#, true),
            (r#"title pr and userType eq "Employee""#, true),
            (r#"title pr or userType eq "Intern""#, true),
            (r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#, true),
            (r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#, true),
            (r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#, false),
            (r#"userType eq "Employee" and (emails.type eq "work")"#, true),
            (r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#, true),
            (r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#, true),
        ];
        for (f, want) in cases {
            assert_eq!(check(f), want, "{f}");
        }
    }

    #[test]
    fn operators_and_keywords_are_case_insensitive() {
        assert!(check(r#"userName EQ "bjensen@example.com""#));
        assert!(check(r#"title PR AND userType Eq "Employee""#));
        assert!(check(r#"NOT (title eq "x") Or userType eq "x""#));
        assert!(check("active EQ TRUE"));
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        // a or b and c == a or (b and c): with a true, b false, c false => true.
        assert!(check(r#"title pr or userType eq "x" and title eq "y""#));
        // (a or b) and c => false.
        assert!(!check(r#"(title pr or userType eq "x") and title eq "y""#));
        // not binds tighter than and: (not a) and b.
        assert!(!check(r#"not (title pr) and userType eq "Employee""#));
        assert!(check(r#"not (title eq "x") and userType eq "Employee""#));
        // Lenient `not` without parentheses.
        assert!(check(r#"not title eq "x""#));
        assert!(!check("not not not title pr"));
    }

    #[test]
    fn string_comparison_honours_case_exact() {
        // userName is caseExact false: Okta's spec test looks a user up by the upper-cased userName.
        assert!(check(r#"userName eq "BJENSEN@EXAMPLE.COM""#));
        assert!(check(r#"name.givenName eq "barbara""#));
        assert!(check(r#"userName ew "@EXAMPLE.com""#));
        // externalId and id are caseExact.
        assert!(check(r#"externalId eq "bjensen""#));
        assert!(!check(r#"externalId eq "BJensen""#));
        assert!(!check(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
        assert!(check(r#"meta.resourceType eq "User""#));
        assert!(!check(r#"meta.resourceType eq "user""#));
    }

    #[test]
    fn substring_and_ordering_operators() {
        assert!(check(r#"displayName co "babs""#));
        assert!(check(r#"displayName sw "barbara""#));
        assert!(check(r#"displayName ew "jensen""#));
        assert!(!check(r#"displayName ew "babs""#));
        assert!(check(r#"userName gt "a""#));
        assert!(check(r#"userName lt "C""#));
        assert!(!check(r#"userName lt "b""#));
        assert!(check(r#"userName ne "someone""#));
        assert!(!check(r#"userName ne "BJENSEN@example.com""#));
    }

    #[test]
    fn multi_valued_attributes_match_if_any_value_matches() {
        assert!(check(r#"emails.type eq "home""#));
        assert!(check(r#"emails.value eq "babs@jensen.org""#));
        // On a complex multi-valued attribute, `emails co "x"` compares the value sub-attribute.
        assert!(check(r#"emails co "jensen.org""#));
        assert!(check(r#"emails eq "BABS@jensen.org""#));
        assert!(!check(r#"emails eq "nobody@example.com""#));
        assert!(check(r#"emails[type eq "home"]"#));
        assert!(!check(r#"emails[type eq "work" and value co "jensen.org"]"#));
        assert!(check(r#"emails[not (type eq "work")]"#));
        assert!(check(r#"emails[primary eq true].value eq "bjensen@example.com""#));
    }

    #[test]
    fn entra_value_path_with_sub_attribute() {
        // Entra's SCIM tutorial: `emails[type eq "work"].value eq "user@contoso.com"` must work.
        assert!(check(r#"emails[type eq "work"].value eq "BJensen@example.com""#));
        assert!(!check(r#"emails[type eq "home"].value eq "bjensen@example.com""#));
        assert!(check(r#"emails[type eq "work"].value pr"#));
        // Entra's attribute table writes `emails[type eq "other"].Value`.
        assert!(!check(r#"emails[type eq "other"].Value eq "x""#));
    }

    #[test]
    fn enterprise_and_urn_qualified_attributes() {
        assert!(check(&format!(r#"{ENTERPRISE_USER_SCHEMA}:department eq "tour operations""#)));
        assert!(check(&format!(r#"{ENTERPRISE_USER_SCHEMA}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#)));
        // Entra: "Query the value of a reference attribute": `id eq "..." and manager eq "..."`.
        assert!(check(r#"id eq "2819c223-7f76-453a-919d-413861904646" and manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#));
        assert!(!check(r#"department eq "Sales""#));
    }

    #[test]
    fn booleans_numbers_and_datetimes() {
        assert!(check("active eq true"));
        assert!(!check("active eq false"));
        assert!(check("active ne false"));
        assert!(check(r#"meta.created lt "2011-01-01T00:00:00Z""#));
        // An offset and no offset (UTC) compare chronologically.
        assert!(check(r#"meta.created eq "2010-01-23T05:56:22+01:00""#));
        assert!(check(r#"meta.created eq "2010-01-23T04:56:22""#));
        assert!(check(r#"meta.lastModified gt "2011-05-13T04:42:33.999Z""#));
    }

    #[test]
    fn presence() {
        assert!(check("emails pr"));
        assert!(check("name pr"));
        assert!(!check("phoneNumbers pr"), "empty array");
        assert!(!check("name.middleName pr"), "empty string");
        assert!(!check("nickName pr"), "absent");
        assert!(check("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager pr"));
        let with_nulls = json!({"userName": "x", "title": null, "name": {"givenName": null}, "emails": [{}]});
        for f in ["title pr", "name pr", "emails pr", "name.givenName pr"] {
            assert!(!parse(f, ResourceType::User).unwrap().matches(&with_nulls), "{f}");
        }
    }

    #[test]
    fn null_and_absent_values() {
        assert!(check("nickName eq null"));
        assert!(!check("title eq null"));
        assert!(check("title ne null"));
        // Absent attributes satisfy `ne` and nothing else.
        assert!(check(r#"nickName ne "Babs""#));
        assert!(!check(r#"nickName eq "Babs""#));
        assert!(!check(r#"nickName co "B""#));
    }

    #[test]
    fn json_string_escapes() {
        assert!(check(r#"displayName eq "Barbara \"Babs\" Jensen""#));
        assert!(check(r#"displayName eq "Barbara \u0022Babs\u0022 Jensen""#));
        let u = json!({"userName": "zoë\\x"});
        assert!(parse(r#"userName eq "zo\u00eb\\x""#, ResourceType::User).unwrap().matches(&u));
        // caseExact=false folds ASCII letters only (scim::case): ë and Ë stay different.
        assert!(parse(r#"userName eq "ZOë\\X""#, ResourceType::User).unwrap().matches(&u));
        assert!(!parse(r#"userName eq "ZOË\\X""#, ResourceType::User).unwrap().matches(&u));
    }

    #[test]
    fn group_filters() {
        let g = group();
        let m = |f: &str| parse(f, ResourceType::Group).unwrap().matches(&g);
        // Entra, "Get Group by displayName".
        assert!(m(r#"displayName eq "test scimv2""#));
        assert!(m(r#"members[value eq "23a35c27-23d3-4c03-b4c5-6443c09e7173"]"#));
        assert!(m(r#"members eq "23a35c27-23d3-4c03-b4c5-6443c09e7173""#));
        assert!(m(r#"id eq "abf4dd94-a4c0-4f67-89c9-76b03340cb9b" and members.value eq "23a35c27-23d3-4c03-b4c5-6443c09e7173""#));
        assert!(!m(r#"members.display eq "nobody""#));
        assert!(parse(r#"userName eq "x""#, ResourceType::Group).is_err());
    }

    #[test]
    fn entra_test_connection_finds_nothing() {
        // Entra's Test Connection queries a random GUID and expects an empty result.
        assert!(!check(r#"userName eq "0b1e8ea5-0f4f-4b45-8e35-1d5e09d1cd58""#));
        assert!(!check(r#"externalId eq "0b1e8ea5-0f4f-4b45-8e35-1d5e09d1cd58""#));
    }

    #[test]
    fn type_and_operator_errors() {
        assert!(error("active gt true").contains("boolean attributes support only eq and ne"));
        assert!(error("active lt false").contains("boolean"));
        assert!(error(r#"active co "t""#).contains("boolean"));
        assert!(error(r#"active eq "true""#).contains("true or false"));
        assert!(error("userName eq 42").contains("\"quoted string\""));
        assert!(error("userName eq true").contains("\"quoted string\""));
        assert!(error(r#"meta.created gt "yesterday""#).contains("RFC 3339"));
        assert!(error(r#"meta.created co "2011""#).contains("dateTime"));
        assert!(error(r#"x509Certificates.value gt "AA==""#).contains("binary"));
        assert!(error(r#"name eq "Barbara""#).contains("name.formatted"));
        assert!(error(r#"meta eq "x""#).contains("complex"));
        assert!(error(r#"userName gt null"#).contains("null"));
    }

    #[test]
    fn syntax_errors_explain_themselves() {
        assert!(parse("", ResourceType::User).unwrap_err().detail.contains("empty"));
        assert!(parse("   ", ResourceType::User).unwrap_err().detail.contains("empty"));
        assert!(error(r#"nope eq "x""#).contains("'nope' is not an attribute of User"));
        assert!(error(r#"userName equals "x""#).contains("unknown operator 'equals'"));
        assert!(error("userName eq").contains("input ended"));
        assert!(error("userName").contains("expected an operator"));
        assert!(error(r#"userName eq "x" and"#).contains("input ended"));
        assert!(error(r#"(userName eq "x""#).contains("expected ')'"));
        assert!(error(r#"userName eq "x")"#).contains("unexpected ')'"));
        assert!(error(r#"userName eq "x" title pr"#).contains("unexpected 'title'"));
        assert!(error(r#"userName eq "x"#).contains("not terminated"));
        assert!(error(r#"userName eq "\q""#).contains("not a valid JSON string"));
        assert!(error("userName eq jyoung").contains("expected a value"));
        assert!(error("userName eq 12abc").contains("not a JSON number"));
        assert!(error(r#"userName eq 'x'"#).contains("unexpected character"));
        assert!(error(r#"emails[type eq "work"]"#.replace(']', "").as_str()).contains("']'"));
        assert!(error(r#"emails[foo eq "x"]"#).contains("not a sub-attribute of emails"));
        assert!(error(r#"emails[type[value eq "x"] eq "x"]"#).contains("nested"));
        assert!(error(r#"name[givenName eq "x"]"#).contains("multi-valued complex"));
        assert!(error(r#"emails[type eq "work"].nope eq "x""#).contains("not a sub-attribute"));
        assert!(error(r#"userName eq "x" and .value eq "y""#).contains("expected an attribute name"));
        assert!(error(&"(".repeat(200)).contains("deeper than"));
        assert!(error(&format!("{}title pr", "not ".repeat(100))).contains("deeper than"));
        let long = vec!["title pr"; 300].join(" or ");
        assert!(error(&long).contains("more than 256 attribute expressions"));
        assert!(check(&vec!["title pr"; 256].join(" or ")));
    }

    #[test]
    fn garbage_never_panics() {
        // A small xorshift generator keeps the test deterministic without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).unwrap_or(0)
        };
        let alphabet: Vec<char> = "()[]\"\\ .:$-_0123456789eEaAndotrpqswglcx!@#é漢\u{0}\t\n".chars().collect();
        let words = [
            "userName",
            "emails",
            "[",
            "]",
            "(",
            ")",
            " eq ",
            " and ",
            " or ",
            "not",
            "\"",
            "pr",
            ".value",
            "urn:ietf:params:scim:schemas:core:2.0:User:",
            "-1.5e3",
            "null",
            "true",
        ];
        // Valid filters to mutate, so that many inputs parse and get evaluated, not just rejected.
        let seeds = [
            r#"userName eq "bjensen@example.com""#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp"]"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z" and active eq true"#,
            r#"members[value eq "23a35c27"] or displayName sw "Test""#,
        ];
        let (mut parsed, mut refused) = (0, 0);
        for i in 0..20_000 {
            let input: String = if i % 2 == 0 {
                // Random tokens and characters.
                let mut s = String::new();
                for _ in 0..next(24) {
                    if next(3) == 0 { s.push_str(words[next(words.len())]) } else { s.push(alphabet[next(alphabet.len())]) }
                }
                s
            } else {
                // A valid filter with a few characters deleted, inserted or duplicated.
                let mut chars: Vec<char> = seeds[next(seeds.len())].chars().collect();
                for _ in 0..=next(3) {
                    let at = next(chars.len() + 1);
                    match next(3) {
                        0 if at < chars.len() => {
                            chars.remove(at);
                        }
                        1 => chars.insert(at, alphabet[next(alphabet.len())]),
                        _ => {
                            let tail: Vec<char> = chars[at..].iter().take(next(6)).copied().collect();
                            chars.splice(at..at, tail);
                        }
                    }
                }
                chars.into_iter().collect()
            };
            for rt in ResourceType::ALL {
                match parse(&input, rt) {
                    Ok(f) => {
                        parsed += 1;
                        f.matches(&user());
                        f.matches(&group());
                        let _ = equality_hint(&f);
                    }
                    Err(e) => {
                        refused += 1;
                        assert_eq!(e.scim_type, Some("invalidFilter"));
                    }
                }
                let _ = parse_path(&input, rt);
            }
        }
        assert!(parsed > 1_000 && refused > 1_000, "parsed {parsed}, refused {refused}");
    }

    fn hint(f: &str) -> Option<(String, String)> {
        equality_hint(&parse(f, ResourceType::User).unwrap())
    }

    #[test]
    fn equality_hints() {
        let h = |a: &str, v: &str| Some((a.to_string(), v.to_string()));
        assert_eq!(hint(r#"userName eq "Test_User_00aa00aa""#), h("userName", "Test_User_00aa00aa"));
        assert_eq!(hint(r#"USERNAME EQ "x""#), h("userName", "x"));
        assert_eq!(hint(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#), h("userName", "x"));
        assert_eq!(hint(r#"externalId eq "0a21f0f2""#), h("externalId", "0a21f0f2"));
        assert_eq!(hint(r#"id eq "2819c223""#), h("id", "2819c223"));
        assert_eq!(hint(r#"emails.value eq "a@b.c""#), h("emails.value", "a@b.c"));
        assert_eq!(hint(r#"emails eq "a@b.c""#), h("emails.value", "a@b.c"));
        assert_eq!(hint(r#"emails[type eq "work"].value eq "a@b.c""#), h("emails.value", "a@b.c"));
        assert_eq!(
            hint(&format!(r#"{ENTERPRISE_USER_SCHEMA}:employeeNumber eq "42""#)),
            h(&format!("{ENTERPRISE_USER_SCHEMA}:employeeNumber"), "42")
        );
        assert_eq!(hint(r#"id eq "u1" and manager eq "m1""#), h("id", "u1"));
        assert_eq!(hint(r#"title pr and userName eq "x""#), h("userName", "x"));
        assert_eq!(hint(r#"userName eq "x" or userName eq "y""#), None);
        assert_eq!(hint(r#"not (userName eq "x")"#), None);
        assert_eq!(hint(r#"userName co "x""#), None);
        assert_eq!(hint("active eq true"), None);
        assert_eq!(hint("userName eq null"), None);
        assert_eq!(hint(r#"emails[type eq "work"]"#), None);
        let g = equality_hint(&parse(r#"displayName eq "Test SCIMv2""#, ResourceType::Group).unwrap());
        assert_eq!(g, h("displayName", "Test SCIMv2"));
    }

    #[test]
    fn paths() {
        let p = |s: &str| parse_path(s, ResourceType::User).unwrap();
        let simple = p("name.familyName");
        assert_eq!((simple.attr.path(), simple.filter.is_none()), ("name.familyName".into(), true));
        let entra = p(r#"emails[type eq "work"].value"#);
        assert_eq!(entra.attr.path(), "emails.value");
        let filter = entra.filter.unwrap();
        assert!(filter.matches(&json!({"type": "Work", "value": "x"})));
        assert!(!filter.matches(&json!({"type": "home"})));
        assert_eq!(filter.equality_terms().unwrap()[0].1, json!("work"));
        let urn = p(&format!("{ENTERPRISE_USER_SCHEMA}:manager"));
        assert_eq!(urn.attr.container, Some(ENTERPRISE_USER_SCHEMA));
        let members = parse_path(r#"members[value eq "89bb1940-b905-4575-9e7f-6f887cfb368e"]"#, ResourceType::Group).unwrap();
        assert_eq!(members.attr.path(), "members");
        assert!(members.filter.unwrap().matches(&json!({"value": "89bb1940-b905-4575-9e7f-6f887cfb368e"})));
        let bad = |s: &str| {
            let e = parse_path(s, ResourceType::User).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidPath"), "{s}");
            e.detail
        };
        assert!(bad("").contains("starts with an attribute name"));
        assert!(bad("nope").contains("not an attribute"));
        assert!(bad(r#"emails[type eq "work"] extra"#).contains("unexpected"));
        assert!(bad(r#"emails[type eq ]"#).contains("expected a value"));
        assert!(bad(r#"name[givenName eq "x"]"#).contains("multi-valued"));
        assert!(bad(r#"userName eq "x""#).contains("unexpected"));
    }

    #[test]
    fn equality_terms_only_for_eq_conjunctions() {
        let f = |s: &str| parse_path(s, ResourceType::User).unwrap().filter.unwrap();
        let terms = f(r#"addresses[type eq "work" and country eq "ML"]"#).equality_terms().unwrap();
        let names: Vec<&str> = terms.iter().map(|(d, _)| d.name).collect();
        assert_eq!(names, ["type", "country"]);
        assert!(f(r#"emails[type ne "work"]"#).equality_terms().is_none());
        assert!(f(r#"emails[type eq "work" or type eq "home"]"#).equality_terms().is_none());
        assert!(f(r#"emails[type eq null]"#).equality_terms().is_none());
    }
}
