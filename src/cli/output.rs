//! Tables for people, JSON and YAML for scripts.

use clap::ValueEnum;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// Prints `rows` under `headers` with columns padded to fit, like `kubectl get`.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        padded.join("   ").trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().cloned().map(line));
    out.join("\n") + "\n"
}

pub fn structured<T: Serialize>(format: Format, value: &T) -> anyhow::Result<String> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(value)? + "\n",
        Format::Yaml => serde_norway::to_string(value)?,
        Format::Table => unreachable!("tables are printed by the caller"),
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
        let t = table(&["NAME", "KIND"], &[vec!["okta".into(), "okta".into()], vec!["a-long-name".into(), "oidc".into()]]);
        assert_eq!(t, "NAME          KIND\nokta          okta\na-long-name   oidc\n");
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
