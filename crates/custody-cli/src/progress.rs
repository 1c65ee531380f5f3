//! Progress bars for long work, on standard error and only on a terminal (never in a pipe
//! or a CI log), and only when the work is big enough to be worth watching.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting items; hidden when `total < threshold` or stderr is not a terminal.
pub(crate) fn bar(total: u64, threshold: u64, message: &str) -> ProgressBar {
    styled(
        total,
        threshold,
        message,
        "{msg} [{bar:40}] {human_pos}/{human_len} {per_sec} eta {eta}",
    )
}

/// A bar counting bytes; hidden like [`bar`].
pub(crate) fn bytes_bar(total: u64, threshold: u64, message: &str) -> ProgressBar {
    styled(
        total,
        threshold,
        message,
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
}

/// A spinner with `message` for work that cannot count its steps (custody reading a large
/// report, here or on the server); hidden when `size < threshold` or stderr is not a
/// terminal. It ticks by itself until finished.
pub(crate) fn spinner(size: u64, threshold: u64, message: &str) -> ProgressBar {
    if size < threshold || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn styled(total: u64, threshold: u64, message: &str, template: &str) -> ProgressBar {
    if total < threshold || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}
