//! A spinner on stderr while waiting; invisible when stderr is not a terminal.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub fn start(message: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template is valid"));
    pb.set_message(message.into());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}
