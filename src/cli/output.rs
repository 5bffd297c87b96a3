//! Human output: colour decisions and the styles for problems and summaries.
//! Colour is on for `always`, off for `never`, and for `auto` only on a
//! terminal, with NO_COLOR unset or empty and TERM not `dumb`.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};

use super::ColorChoice;
use crate::profile::{Problem, Severity};

#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Applies styles when colour is enabled for its stream.
#[derive(Debug, Clone, Copy)]
pub struct Painter {
    enabled: bool,
}

impl Painter {
    pub fn for_stream(choice: ColorChoice, stream: Stream) -> Painter {
        let terminal = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        Painter {
            enabled: decide(
                choice,
                terminal,
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("TERM").as_deref(),
            ),
        }
    }

    pub fn plain() -> Painter {
        Painter { enabled: false }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.enabled { format!("{}{text}{}", style.render(), style.render_reset()) } else { text.to_string() }
    }

    pub fn error(&self, text: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), text)
    }
    pub fn warning(&self, text: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default().bold(), text)
    }
    pub fn good(&self, text: &str) -> String {
        self.paint(AnsiColor::Green.on_default().bold(), text)
    }
    pub fn field(&self, text: &str) -> String {
        self.paint(AnsiColor::Cyan.on_default(), text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    /// `file:line:col: error: path: message` and an indented help line.
    pub fn problem(&self, problem: &Problem) -> String {
        let severity = match problem.severity {
            Severity::Error => self.error("error"),
            Severity::Warning => self.warning("warning"),
        };
        let mut text = format!("{}:{}:{}: {severity}: ", problem.file.display(), problem.line, problem.column);
        if !problem.path.is_empty() {
            text.push_str(&self.field(&problem.path));
            text.push_str(": ");
        }
        text.push_str(&problem.message);
        if let Some(help) = &problem.help {
            text.push_str(&format!("\n  {} {help}", self.dim("help:")));
        }
        text
    }
}

/// Text from outside (a device, a database, a file) made safe to print on a
/// terminal: every control character (ESC, BEL, CR, a line feed...) becomes
/// a visible escape such as `\u{1b}`, so what a peer or a file wrote cannot
/// move the cursor, recolour, retitle the window or hide earlier lines.
pub fn terminal_safe(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_unicode().to_string() } else { c.to_string() }).collect()
}

fn decide(
    choice: ColorChoice,
    terminal: bool,
    no_color: Option<&std::ffi::OsStr>,
    term: Option<&std::ffi::OsStr>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn terminal_safe_shows_control_characters_and_keeps_the_rest() {
        assert_eq!(terminal_safe("a\x1b[2Jb\x07\r\nc é"), "a\\u{1b}[2Jb\\u{7}\\u{d}\\u{a}c é");
    }

    #[test]
    fn colour_choice() {
        assert!(decide(ColorChoice::Always, false, Some(OsStr::new("1")), None));
        assert!(!decide(ColorChoice::Never, true, None, None));
        assert!(decide(ColorChoice::Auto, true, None, Some(OsStr::new("xterm"))));
        assert!(!decide(ColorChoice::Auto, true, Some(OsStr::new("1")), None));
        assert!(decide(ColorChoice::Auto, true, Some(OsStr::new("")), None));
        assert!(!decide(ColorChoice::Auto, false, None, None));
        assert!(!decide(ColorChoice::Auto, true, None, Some(OsStr::new("dumb"))));
    }
}
