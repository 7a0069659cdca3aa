//! `infra`: the command line.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = infra::cli::Cli::parse();
    if let Err(e) = infra::cli::run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
