//! `infra`: the command line.

use clap::Parser;

#[tokio::main]
async fn main() {
    quiet_broken_pipe();
    let cli = infra::cli::Cli::parse();
    if let Err(e) = infra::cli::run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `infra grants list | head -1` must end quietly, as kubectl and every Unix tool do. Rust ignores
/// SIGPIPE, so a write to a closed pipe fails and `println!` panics with a backtrace instead;
/// the default action ends the process silently.
fn quiet_broken_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; restoring a signal's
    // default action has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
