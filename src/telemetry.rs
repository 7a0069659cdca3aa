//! Structured logging for both binaries.
//!
//! Log fields carry text from outside (a provider's error description, a SCIM client's userName,
//! an HTTP method), so the text format escapes control characters in every field: a value cannot
//! start a forged log line with a newline or repaint a terminal with ANSI escapes. (The JSON
//! format escapes them by construction.)

use clap::{Args, ValueEnum};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{self, FormatFields};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct LogArgs {
    /// Log filter, such as `info` or `infra=debug,kube=info`.
    #[arg(long, env = "INFRA_LOG", default_value = "info")]
    pub log_level: String,
    /// `text` for people, `json` for log pipelines.
    #[arg(long, env = "INFRA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_level).map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", args.log_level))?;
    let registry = tracing_subscriber::registry().with(filter);
    // Logs go to stderr (stdout is for output, such as `crds`), coloured only for a person
    // watching a terminal: log files and collectors get no escape sequences.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match args.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr).with_ansi(colour).with_target(true).fmt_fields(escaped_fields()))
            .try_init()?,
        LogFormat::Json => registry.with(fmt::layer().with_writer(std::io::stderr).json().flatten_event(true)).try_init()?,
    }
    Ok(())
}

/// The text format's fields (`message` bare, others `name=value`), each value escaped.
fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    format::debug_fn(|w, field, value| {
        let raw = format!("{value:?}");
        let text = escape(&raw);
        if field.name() == "message" { w.write_str(&text) } else { write!(w, "{}={text}", field.name()) }
    })
    .delimited(" ")
}

/// `s` with control characters (C0, DEL, C1), line and paragraph separators and bidirectional
/// overrides written as Rust escapes, so the value stays on its line and looks as it is.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(bad) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_log_fields_cannot_forge_lines_or_escape_sequences() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(fmt::layer().with_ansi(false).without_time().fmt_fields(escaped_fields()).with_writer(move || writer.clone()));
        let hostile = "denied\n2030-01-01T00:00:00Z  INFO infra: login succeeded user=admin\u{1b}[2J\r\u{85}\u{202E}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(reason = %hostile, debug = ?hostile, plain = hostile, "refused {}", hostile);
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r') && !out.contains('\u{85}') && !out.contains('\u{202E}'), "{out:?}");
        assert!(out.contains(r"reason=denied\n2030-01-01") && out.contains(r"\u{1b}[2J"), "{out}");
        assert!(out.contains("refused denied\\n"), "the message is escaped too: {out}");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        assert!(matches!(escape("alice@example.com ünïcode"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape("a\tb"), "a\\tb");
    }
}
