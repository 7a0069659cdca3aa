//! Output the way `kubectl get` prints it: tables for people (`-o wide` for more columns,
//! `--no-headers`), `-o name`, and `-o json|yaml` as a `List` for scripts.

use clap::{Args, ValueEnum};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// `kind.group/name`, one per line.
    Name,
    Json,
    Yaml,
}

/// The flags of every `list` command.
#[derive(Args, Clone, Debug, Default)]
pub struct ListArgs {
    /// Output format. json and yaml print a kubectl-style List.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Leave out the table's header line.
    #[arg(long)]
    pub no_headers: bool,
    /// Only objects whose labels match this selector, such as `infrahq.com/provider=okta`
    /// (kubectl's syntax: `=`, `!=`, `in`, `notin`, existence).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

impl ListArgs {
    /// The list request, with the label selector if one was given.
    pub fn params(&self) -> kube::api::ListParams {
        let params = kube::api::ListParams::default();
        match &self.selector {
            Some(s) => params.labels(s),
            None => params,
        }
    }
}

/// A table column; `wide` ones appear only with `-o wide`.
pub struct Column {
    pub header: &'static str,
    pub wide: bool,
}

pub const fn col(header: &'static str) -> Column {
    Column { header, wide: false }
}

pub const fn wide(header: &'static str) -> Column {
    Column { header, wide: true }
}

/// Prints `items` as `args` asks: `row` gives every column's value (wide ones included) for the
/// table formats. `empty` is said on stderr when a table would have no rows, as kubectl does.
pub fn print_list<K>(args: &ListArgs, items: Vec<K>, columns: &[Column], row: impl Fn(&K) -> Vec<String>, empty: &str) -> anyhow::Result<()>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    match args.output {
        Format::Table | Format::Wide => {
            if items.is_empty() {
                eprintln!("{empty}");
                return Ok(());
            }
            let show: Vec<bool> = columns.iter().map(|c| !c.wide || args.output == Format::Wide).collect();
            let pick = |cells: Vec<String>| cells.into_iter().zip(&show).filter(|(_, s)| **s).map(|(c, _)| c).collect::<Vec<_>>();
            let headers: Vec<&str> = columns.iter().zip(&show).filter(|(_, s)| **s).map(|(c, _)| c.header).collect();
            let rows: Vec<Vec<String>> = items.iter().map(|i| pick(row(i))).collect();
            print!("{}", table(if args.no_headers { None } else { Some(&headers) }, &rows));
        }
        Format::Name => {
            for item in &items {
                println!("{}.{}/{}", K::kind(&()).to_ascii_lowercase(), K::group(&()), item.meta().name.as_deref().unwrap_or_default());
            }
        }
        Format::Json | Format::Yaml => print!("{}", structured(args.output, &as_list(items)?)?),
    }
    Ok(())
}

/// `items` as kubectl prints a list: a `v1` `List` whose items each carry their `apiVersion` and
/// `kind`, without `managedFields`.
pub fn as_list<K: Resource<DynamicType = ()> + Serialize>(items: Vec<K>) -> anyhow::Result<serde_json::Value> {
    let items = items
        .into_iter()
        .map(|i| {
            let mut v = serde_json::to_value(without_managed_fields(i))?;
            if let Some(map) = v.as_object_mut() {
                map.insert("apiVersion".into(), K::api_version(&()).into());
                map.insert("kind".into(), K::kind(&()).into());
            }
            Ok(v)
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    Ok(serde_json::json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}))
}

/// Prints `rows` under `headers` with columns padded to fit, like `kubectl get`. Widths are
/// display widths, so full-width (CJK) and combining characters line up.
pub fn table(headers: Option<&[&str]>, rows: &[Vec<String>]) -> String {
    let columns = headers.map_or_else(|| rows.first().map_or(0, Vec::len), <[&str]>::len);
    let mut widths = vec![0; columns];
    for cells in headers.map(|h| h.iter().map(|c| c.to_string()).collect::<Vec<_>>()).iter().chain(rows) {
        for (i, cell) in cells.iter().enumerate() {
            widths[i] = widths[i].max(cell.width());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.width()))).collect();
        padded.join("   ").trim_end().to_string()
    };
    let mut out: Vec<String> = headers.map(|h| line(&h.iter().map(|c| c.to_string()).collect::<Vec<_>>())).into_iter().collect();
    out.extend(rows.iter().map(|r| line(r)));
    out.join("\n") + "\n"
}

pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_saphyr::to_string(value)?,
        Format::Table | Format::Wide | Format::Name => anyhow::bail!("-o {format:?} is for lists; use -o json or -o yaml"),
    })
}

/// `kubectl`-style age: 45s, 12m, 3h, 5d.
pub fn age(since: Option<Timestamp>, now: Timestamp) -> String {
    let Some(since) = since else { return "<unknown>".into() };
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Removes `metadata.managedFields`, which is noise for people reading `-o yaml`.
pub fn without_managed_fields<K: kube::Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let t = table(Some(&["NAME", "KIND"]), &[vec!["okta".into(), "okta".into()], vec!["a-long-name".into(), "oidc".into()]]);
        assert_eq!(t, "NAME          KIND\nokta          okta\na-long-name   oidc\n");
        let bare = table(None, &[vec!["okta".into(), "okta".into()]]);
        assert_eq!(bare, "okta   okta\n");
    }

    #[test]
    fn tables_align_by_display_width() {
        // Full-width characters take two columns; a combining accent takes none.
        let t = table(
            Some(&["NAME", "X"]),
            &[vec!["山田".into(), "1".into()], vec!["e\u{301}e".into(), "2".into()], vec!["abcd".into(), "3".into()]],
        );
        assert_eq!(t, "NAME   X\n山田   1\ne\u{301}e     2\nabcd   3\n");
    }

    #[test]
    fn lists_look_like_kubectls() {
        let spec = serde_json::from_value(serde_json::json!({"providerRef": {"name": "okta"}, "userName": "a@x"})).unwrap();
        let mut u = crate::api::User::new("u-1", spec);
        u.metadata.managed_fields = Some(vec![Default::default()]);
        let list = as_list(vec![u]).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["apiVersion"], "v1");
        assert_eq!(list["items"][0]["kind"], "User");
        assert_eq!(list["items"][0]["apiVersion"], "infrahq.com/v1alpha1");
        assert!(list["items"][0]["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn ages() {
        let t = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(age(Some(t(0)), t(59)), "59s");
        assert_eq!(age(Some(t(0)), t(600)), "10m");
        assert_eq!(age(Some(t(0)), t(3 * 3600)), "3h");
        assert_eq!(age(Some(t(0)), t(5 * 86_400)), "5d");
        assert_eq!(age(None, t(0)), "<unknown>");
    }
}
