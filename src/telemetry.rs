//! Structured logging for both binaries.

use clap::{Args, ValueEnum};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

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
    let filter = EnvFilter::try_new(&args.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level {:?}: {e}", args.log_level))?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Text => registry.with(fmt::layer().with_target(true)).try_init()?,
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init()?,
    }
    Ok(())
}
