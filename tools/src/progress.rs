//! Progress bars for runs longer than a few seconds (hidden when not wanted).

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(show: bool, len: u64, unit: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let style = ProgressStyle::with_template(&format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{eta}} left)"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    b.set_style(style.progress_chars("=> "));
    b
}
