//! The `configure_network` dialog as a state machine fed console text: it
//! answers "send this", "done", "failed (with the device's words and the
//! prompt)" or "need more".
//!
//! Pure: no I/O, no clock. [`steps`](super::steps) reads the console, feeds
//! [`Dialog::push`], asks [`Dialog::next_action`], and tells it when the console has
//! gone quiet ([`Dialog::quiet`]) or the step's time is up
//! ([`Dialog::timed_out`]). Matching uses the expect engine's
//! [`Matcher`](super::expect::Matcher).
//!
//! Rules, in order of priority:
//! - a listed prompt (a profile entry) is answered once, in whatever order
//!   the device asks; answering it again is never done: a prompt asked again
//!   after our answer fails the step with the device's words, unless the
//!   entry has another candidate answer to try;
//! - a line matching a `reject` pattern after an answer fails the step (or
//!   moves to the next candidate);
//! - with `keep_defaults`, a prompt the profile does not list that offers a
//!   default (the console's unfinished last line matches the default-prompt
//!   pattern, e.g. `[9600]?`) gets a bare line ending, which keeps the
//!   device's value, up to a cap;
//! - any other prompt left waiting when the console goes quiet fails the
//!   step, quoting it: an unknown question is never answered;
//! - after `done`, an `after_done` prompt (e.g. `Accept or Modify` asked
//!   again) is answered once; a device that resets or goes on is fine too.

use regex::bytes::Regex;

use super::expect::Matcher;
use super::transcript::printable;
use crate::failure::{Classify, FailureClass};

/// What a prompt offering a default looks like by default: the console's
/// unfinished line ends in `[...]?` or `? [...]` (both NET+OS wordings).
pub const DEFAULT_PROMPT: &str = r"(\[[^\]\r\n]*\]\s*\?|\?\s*\[[^\]\r\n]*\])\s*$";

/// How many defaults may be kept before the dialog is taken for a loop.
pub const DEFAULT_MAX_KEPT: usize = 32;

/// How a kept default's answer is shown.
const KEPT: &str = "(a bare line ending)";

/// Device lines kept to quote in an error.
const MAX_WORDS: usize = 4;

/// One answer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// Written as `***` wherever it is shown.
    pub secret: bool,
}

/// A prompt of the profile and its answers (candidates tried in order when
/// the device refuses one).
#[derive(Debug, Clone)]
pub struct Prompt {
    pub expect: Regex,
    pub answers: Vec<Answer>,
    pub optional: bool,
    /// Single-key answers go without a line ending.
    pub no_line_ending: bool,
}

impl Prompt {
    fn label(&self) -> String {
        self.expect.as_str().to_string()
    }
}

/// The compiled dialog of one `configure_network` step.
#[derive(Debug, Clone)]
pub struct Script {
    pub prompts: Vec<Prompt>,
    pub done: Regex,
    pub rejects: Vec<Regex>,
    /// `keep_defaults`: the default-prompt pattern and the cap.
    pub keep_defaults: Option<(Regex, usize)>,
    /// Answered once after `done`, if the device asks it.
    pub after_done: Option<Prompt>,
    pub line_ending: &'static str,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Reply),
    NeedMore,
    Done,
    Failed(DialogFailure),
}

/// An answer to write to the console now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub line_ending: &'static str,
    pub secret: bool,
    /// The prompt answered: the entry's pattern, or the device's own text
    /// for a kept default.
    pub prompt: String,
    pub kind: ReplyKind,
}

impl Reply {
    /// The answer as it may be shown.
    pub fn shown(&self) -> String {
        if self.secret { "***".into() } else { self.text.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// A profile entry, with the index of the candidate sent.
    Listed { entry: usize, candidate: usize },
    /// A bare line ending that keeps the device's value.
    KeptDefault,
    /// The `after_done` answer.
    AfterDone,
}

/// Why the dialog failed. Texts never hold a secret answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogFailure {
    #[error("the device rejected the answer `{answer}` to `{prompt}`: it printed `{words}`")]
    Rejected { prompt: String, answer: String, words: String },
    #[error("the device asked `{prompt}` again after the answer `{answer}`{}", printed(words))]
    AskedAgain { prompt: String, answer: String, words: Vec<String> },
    #[error("the device asks `{prompt}`, which the profile does not answer{}", if *offers_default {
        " (it offers a default: `keep_defaults: true` would keep it, or add an entry)"
    } else {
        " and which offers no default to keep: add an entry for it"
    })]
    UnknownPrompt { prompt: String, offers_default: bool },
    #[error("more than {cap} prompts with a default (the last `{prompt}`): the dialog looks like a loop")]
    TooManyDefaults { cap: usize, prompt: String },
    #[error("the device saved its settings without asking {}", prompts.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "))]
    NotAsked { prompts: Vec<String> },
}

fn printed(words: &[String]) -> String {
    if words.is_empty() { String::new() } else { format!(": it printed `{}`", words.join(" / ")) }
}

impl Classify for DialogFailure {
    /// Each is the device answering otherwise than the profile expects.
    fn class(&self) -> FailureClass {
        match self {
            DialogFailure::Rejected { .. }
            | DialogFailure::AskedAgain { .. }
            | DialogFailure::UnknownPrompt { .. }
            | DialogFailure::TooManyDefaults { .. }
            | DialogFailure::NotAsked { .. } => FailureClass::Device,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Asking,
    AfterDone,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Listed(usize),
    Default(String),
}

#[derive(Debug, Clone)]
struct Last {
    key: Key,
    prompt: String,
    shown: String,
    candidate: usize,
}

/// What was answered, for the step's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries answered (their patterns), in order.
    pub answered: Vec<String>,
    /// Prompts whose default was kept (the device's text), in order.
    pub kept_defaults: Vec<String>,
    /// Optional entries the device did not ask.
    pub missed_optional: Vec<String>,
    /// The `after_done` prompt came and was answered.
    pub accepted_after_done: bool,
}

/// One dialog in progress: push the console text as it arrives, then ask
/// [`Dialog::next_action`] until it needs more.
pub struct Dialog {
    script: Script,
    matcher: Matcher,
    phase: Phase,
    /// Per entry, the answer given (as shown), once answered.
    answered: Vec<Option<String>>,
    last: Option<Last>,
    /// Line ends seen since our last answer (the first ends the prompt's
    /// own line, with the echo of the answer).
    lines_since_answer: usize,
    /// Device lines since our last answer.
    words: Vec<String>,
    secrets: Vec<String>,
    summary: Summary,
    failed: Option<DialogFailure>,
}

impl std::fmt::Debug for Dialog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialog").finish_non_exhaustive()
    }
}

impl Dialog {
    pub fn new(script: Script) -> Dialog {
        let answered = vec![None; script.prompts.len()];
        Dialog {
            script,
            matcher: Matcher::new(),
            phase: Phase::Asking,
            answered,
            last: None,
            lines_since_answer: 0,
            words: Vec::new(),
            secrets: Vec::new(),
            summary: Summary::default(),
            failed: None,
        }
    }

    /// Console text as it arrives.
    pub fn push(&mut self, bytes: &[u8]) {
        self.matcher.push(bytes);
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// What the dialog waits for, for a timeout message.
    pub fn waiting_for(&self) -> String {
        match self.phase {
            Phase::Asking => {
                match self.script.prompts.iter().zip(&self.answered).find(|(p, a)| a.is_none() && !p.optional) {
                    Some((prompt, _)) => format!("the prompt `{}`", prompt.label()),
                    None => format!("`{}`", self.script.done.as_str()),
                }
            }
            _ => "the end of the dialog".into(),
        }
    }

    /// The next thing to do with the text received so far. A failure is
    /// final: it is given again on every later call.
    pub fn next_action(&mut self) -> Action {
        let action = self.advance();
        self.settle(action)
    }

    fn settle(&mut self, action: Action) -> Action {
        if let Some(failure) = &self.failed {
            return Action::Failed(failure.clone());
        }
        if let Action::Failed(failure) = &action {
            self.failed = Some(failure.clone());
        }
        action
    }

    fn advance(&mut self) -> Action {
        if let Some(failure) = &self.failed {
            return Action::Failed(failure.clone());
        }
        loop {
            if self.phase == Phase::Finished {
                return Action::Done;
            }
            let (found, target) = {
                let (regexes, targets) = self.active();
                let found = self.matcher.peek(&regexes);
                (found, found.map(|(index, _, _)| targets[index]))
            };
            let limit = found.map_or(self.matcher.pending().len(), |(_, start, _)| start);
            let consumed = match self.take_lines(limit) {
                Ok(consumed) => consumed,
                Err(failure) => return Action::Failed(failure),
            };
            let (Some((_, _, end)), Some(target)) = (found, target) else {
                return self.unlisted();
            };
            self.matcher.consume(end - consumed);
            match target {
                Target::Done => {
                    let unanswered = |optional: bool| -> Vec<String> {
                        self.script
                            .prompts
                            .iter()
                            .zip(&self.answered)
                            .filter(|(p, a)| a.is_none() && p.optional == optional)
                            .map(|(p, _)| p.label())
                            .collect()
                    };
                    let missing = unanswered(false);
                    if !missing.is_empty() {
                        return Action::Failed(DialogFailure::NotAsked { prompts: missing });
                    }
                    self.summary.missed_optional = unanswered(true);
                    self.last = None;
                    self.phase = if self.script.after_done.is_some() { Phase::AfterDone } else { Phase::Finished };
                }
                Target::AfterDone => {
                    let Some(prompt) = self.script.after_done.as_ref() else { continue };
                    let answer =
                        prompt.answers.first().cloned().unwrap_or(Answer { text: String::new(), secret: false });
                    let reply = Reply {
                        line_ending: if prompt.no_line_ending { "" } else { self.script.line_ending },
                        prompt: prompt.label(),
                        text: answer.text,
                        secret: answer.secret,
                        kind: ReplyKind::AfterDone,
                    };
                    self.summary.accepted_after_done = true;
                    self.phase = Phase::Finished;
                    return Action::Send(reply);
                }
                Target::Listed(entry) => return self.answer_listed(entry),
            }
        }
    }

    /// The console has been quiet for a while: a question left waiting that
    /// nothing answers fails the step; after `done`, silence means the
    /// device is not asking to accept again.
    pub fn quiet(&mut self) -> Action {
        let action = match self.phase {
            Phase::Finished => Action::Done,
            Phase::AfterDone => {
                self.phase = Phase::Finished;
                Action::Done
            }
            Phase::Asking => match self.waiting_question() {
                Some(failure) => Action::Failed(failure),
                None => Action::NeedMore,
            },
        };
        self.settle(action)
    }

    /// The step's time is up: what to say, if more than a plain timeout
    /// (`None`: report the timeout). After `done` it is the end.
    pub fn timed_out(&mut self) -> Option<Action> {
        let action = match self.phase {
            Phase::Finished | Phase::AfterDone => {
                self.phase = Phase::Finished;
                Some(Action::Done)
            }
            Phase::Asking => self.waiting_question().map(Action::Failed),
        };
        action.map(|a| self.settle(a))
    }

    /// The unfinished last line, when it reads like a question.
    fn waiting_question(&self) -> Option<DialogFailure> {
        let tail = self.tail();
        let text = self.redact(printable(tail).trim().to_string());
        let asks = text.ends_with('?') || text.ends_with(':') || text.ends_with(']');
        if text.is_empty() || !asks {
            return None;
        }
        let offers_default = Regex::new(DEFAULT_PROMPT).is_ok_and(|r| r.is_match(tail))
            || self.script.keep_defaults.as_ref().is_some_and(|(r, _)| r.is_match(tail));
        Some(DialogFailure::UnknownPrompt { prompt: text, offers_default })
    }

    /// Bytes after the last line end: the line the device is printing.
    /// Empty while it is still the line of the prompt we answered (its
    /// rest, e.g. the ` [N]? ` after a listed pattern, is no new prompt).
    fn tail(&self) -> &[u8] {
        let pending = self.matcher.pending();
        if self.last.is_some() && self.lines_since_answer == 0 {
            return &[];
        }
        let start = pending.iter().rposition(|&b| b == b'\r' || b == b'\n').map_or(0, |p| p + 1);
        &pending[start..]
    }

    /// The patterns to look for now, and what each means.
    fn active(&self) -> (Vec<&Regex>, Vec<Target>) {
        let mut regexes = Vec::new();
        let mut targets = Vec::new();
        match self.phase {
            Phase::Asking => {
                for (index, prompt) in self.script.prompts.iter().enumerate() {
                    regexes.push(&prompt.expect);
                    targets.push(Target::Listed(index));
                }
                regexes.push(&self.script.done);
                targets.push(Target::Done);
            }
            Phase::AfterDone => {
                if let Some(prompt) = &self.script.after_done {
                    regexes.push(&prompt.expect);
                    targets.push(Target::AfterDone);
                }
            }
            Phase::Finished => {}
        }
        (regexes, targets)
    }

    /// Consumes the complete lines before `limit`, watching them for
    /// rejections; returns how many bytes it consumed.
    fn take_lines(&mut self, limit: usize) -> Result<usize, DialogFailure> {
        let mut consumed = 0;
        loop {
            let pending = self.matcher.pending();
            let Some(end) = pending[..limit - consumed].iter().position(|&b| b == b'\r' || b == b'\n') else {
                return Ok(consumed);
            };
            let text = self.redact(printable(&pending[..end]).trim().to_string());
            let rejected = self.script.rejects.iter().any(|r| r.is_match(&pending[..end]));
            self.matcher.consume(end + 1);
            consumed += end + 1;
            if self.phase != Phase::Asking || self.last.is_none() {
                continue;
            }
            self.lines_since_answer += 1;
            if self.lines_since_answer == 1 || text.is_empty() {
                // The rest of the prompt's own line and the echo of our answer.
                continue;
            }
            if self.words.len() == MAX_WORDS {
                self.words.remove(0);
            }
            self.words.push(text.clone());
            if rejected {
                let last = self.last.as_ref().expect("checked above");
                if self.has_next_candidate(last) {
                    // The device re-asks; the next candidate answers it.
                    continue;
                }
                return Err(DialogFailure::Rejected {
                    prompt: last.prompt.clone(),
                    answer: last.shown.clone(),
                    words: text,
                });
            }
        }
    }

    fn has_next_candidate(&self, last: &Last) -> bool {
        match last.key {
            Key::Listed(entry) => last.candidate + 1 < self.script.prompts[entry].answers.len(),
            Key::Default(_) => false,
        }
    }

    fn answer_listed(&mut self, entry: usize) -> Action {
        let mut candidate = 0;
        if let Some(last) = &self.last
            && last.key == Key::Listed(entry)
        {
            if !self.has_next_candidate(last) {
                return Action::Failed(self.asked_again(last.prompt.clone(), last.shown.clone()));
            }
            candidate = last.candidate + 1;
        } else if let Some(shown) = &self.answered[entry] {
            // Asked again later, after other questions: never answered twice.
            let prompt = self.script.prompts[entry].label();
            return Action::Failed(self.asked_again(prompt, shown.clone()));
        }
        let prompt = &self.script.prompts[entry];
        let answer = prompt.answers.get(candidate).cloned().unwrap_or(Answer { text: String::new(), secret: false });
        let reply = Reply {
            line_ending: if prompt.no_line_ending { "" } else { self.script.line_ending },
            prompt: prompt.label(),
            text: answer.text.clone(),
            secret: answer.secret,
            kind: ReplyKind::Listed { entry, candidate },
        };
        if answer.secret && !answer.text.is_empty() {
            self.secrets.push(answer.text.clone());
        }
        if self.answered[entry].is_none() {
            self.summary.answered.push(reply.prompt.clone());
        }
        self.answered[entry] = Some(reply.shown());
        self.answered_now(Key::Listed(entry), reply.prompt.clone(), reply.shown(), candidate);
        Action::Send(reply)
    }

    /// No listed prompt in sight: keep a default, or wait for more.
    fn unlisted(&mut self) -> Action {
        if self.phase != Phase::Asking {
            return Action::NeedMore;
        }
        let Some((pattern, cap)) = &self.script.keep_defaults else { return Action::NeedMore };
        let tail = self.tail();
        if tail.is_empty() || !pattern.is_match(tail) {
            return Action::NeedMore;
        }
        let cap = *cap;
        let prompt = self.redact(printable(tail).trim().to_string());
        let key = Key::Default(prompt.clone());
        if self.last.as_ref().is_some_and(|l| l.key == key) || self.summary.kept_defaults.contains(&prompt) {
            return Action::Failed(self.asked_again(prompt, KEPT.into()));
        }
        if self.summary.kept_defaults.len() >= cap {
            return Action::Failed(DialogFailure::TooManyDefaults { cap, prompt });
        }
        let all = self.matcher.pending().len();
        self.matcher.consume(all);
        self.summary.kept_defaults.push(prompt.clone());
        self.answered_now(key, prompt.clone(), KEPT.into(), 0);
        Action::Send(Reply {
            text: String::new(),
            line_ending: self.script.line_ending,
            secret: false,
            prompt,
            kind: ReplyKind::KeptDefault,
        })
    }

    fn answered_now(&mut self, key: Key, prompt: String, shown: String, candidate: usize) {
        self.last = Some(Last { key, prompt, shown, candidate });
        self.lines_since_answer = 0;
        self.words.clear();
    }

    fn asked_again(&self, prompt: String, answer: String) -> DialogFailure {
        DialogFailure::AskedAgain { prompt, answer, words: self.words.clone() }
    }

    fn redact(&self, mut text: String) -> String {
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Listed(usize),
    Done,
    AfterDone,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    fn prompt(expect: &str, answers: &[&str]) -> Prompt {
        Prompt {
            expect: re(expect),
            answers: answers.iter().map(|a| Answer { text: a.to_string(), secret: false }).collect(),
            optional: false,
            no_line_ending: false,
        }
    }

    /// The shipped Digi profile's dialog, both wordings.
    fn script(keep_defaults: bool, after_done: bool) -> Script {
        let mut accept = prompt(r"Press A to Accept the settings, or M to Modify\?", &["M"]);
        accept.no_line_ending = true;
        let mut password = prompt("Enter the root password", &["password", "Netsilicon"]);
        password.answers.iter_mut().for_each(|a| a.secret = true);
        password.optional = true;
        let mut reset = prompt("Reset configuration to default values", &["N"]);
        reset.optional = true;
        let mut again = prompt(r"Press A to Accept the settings, or M to Modify\?", &["A"]);
        again.no_line_ending = true;
        Script {
            prompts: vec![
                accept,
                password,
                reset,
                prompt("(?i)obtain IP settings", &["N"]),
                prompt(r"IP address +\[", &["10.0.0.5"]),
                prompt(r"Subnet mask +\[", &["255.255.255.0"]),
                prompt(r"Gateway address +\[", &["10.0.0.1"]),
            ],
            done: re("Saving the changes in NV memory"),
            rejects: vec![re("(?i)invalid")],
            keep_defaults: keep_defaults.then(|| (re(DEFAULT_PROMPT), DEFAULT_MAX_KEPT)),
            after_done: after_done.then_some(again),
            line_ending: "\r",
        }
    }

    /// What the device prints before each wait for an answer (7.4 wording).
    const LATER: &[&str] = &[
        "\r\nPress A to Accept the settings, or M to Modify? ",
        "M\r\nEnter the root password: ",
        "********\r\nReset configuration to default values [N]? ",
        "\r\nFor each of the following questions, you can press <Return> to select the value shown in braces, or you can enter a new value.\r\nNETWORK INTERFACE PARAMETERS:\r\nObtain IP settings automatically using DHCP for this interface [Y]? ",
        "N\r\nIP address  [0.0.0.0]? ",
        "10.0.0.5\r\nSubnet mask  [0.0.0.0]? ",
        "255.255.255.0\r\nGateway address  [0.0.0.0]? ",
        "10.0.0.1\r\nSECURITY PARAMETERS:\r\nWould you like to update the Root Password? [N] ",
        "\r\nHARDWARE PARAMETERS:\r\nSet the baud rate of Serial channels [9600]? ",
        "\r\nThe new baud rate is 9600\r\nThe baud rate will be changed on next power up\r\nPlease set the baud rate for your terminal accordingly\r\nEach development board must have a unique serial number\r\nSet the board's serial number[N99999999]? ",
        "\r\nThe board's new serial number is N99999999\r\nEach development board must have a unique Ethernet MAC address.\r\nSet the board's Ethernet MAC Address [00:40:9D:BA:DB:AD]? ",
        "\r\nThis board's new Ethernet MAC address is 00:40:9D:BA:DB:AD\r\nHow long (in seconds) should CPU delay before starting up [5]? ",
        "\r\nNormally the board will automatically negotiate with the network hub (or switch) to determine the Ethernet duplex setting; however some hubs do not support autonegotiation.\r\nWhat duplex setting should be used in this case (Full or Half)? [Full Duplex] ",
        "\r\nSaving the changes in NV memory...Done.\r\n\r\nNET+OS Version 7.4\r\nDefault duplex setting for Ethernet connection: Invalid Duplex Setting\r\nPress A to Accept the settings, or M to Modify? ",
    ];

    fn show(action: &Action) -> String {
        match action {
            Action::Send(reply) => match reply.kind {
                ReplyKind::KeptDefault => format!("keep {}{:?}", reply.prompt, reply.line_ending),
                _ => format!("send {}{:?}", reply.shown(), reply.line_ending),
            },
            Action::NeedMore => "more".into(),
            Action::Done => "done".into(),
            Action::Failed(failure) => format!("failed: {failure}"),
        }
    }

    /// Feeds each segment in two pieces cut at `split` (the same offset in
    /// every segment), collecting every action but `NeedMore`, and stopping
    /// at the first failure or `Done`.
    fn converse(mut dialog: Dialog, segments: &[&str], split: usize) -> Vec<String> {
        let mut actions = Vec::new();
        for segment in segments {
            let cut = split.min(segment.len());
            for piece in [&segment.as_bytes()[..cut], &segment.as_bytes()[cut..]] {
                dialog.push(piece);
                loop {
                    let action = dialog.next_action();
                    if action == Action::NeedMore {
                        break;
                    }
                    let end = matches!(action, Action::Done | Action::Failed(_));
                    actions.push(show(&action));
                    if end {
                        return actions;
                    }
                }
            }
        }
        let action = dialog.quiet();
        actions.push(format!("quiet: {}", show(&action)));
        actions
    }

    fn longest(segments: &[&str]) -> usize {
        segments.iter().map(|s| s.len()).max().unwrap_or(0) + 1
    }

    #[test]
    fn the_vendor_dialog_later_wording_at_every_split() {
        let want = [
            "send M\"\"",
            "send ***\"\\r\"",
            "send N\"\\r\"",
            "send N\"\\r\"",
            "send 10.0.0.5\"\\r\"",
            "send 255.255.255.0\"\\r\"",
            "send 10.0.0.1\"\\r\"",
            "keep Would you like to update the Root Password? [N]\"\\r\"",
            "keep Set the baud rate of Serial channels [9600]?\"\\r\"",
            "keep Set the board's serial number[N99999999]?\"\\r\"",
            "keep Set the board's Ethernet MAC Address [00:40:9D:BA:DB:AD]?\"\\r\"",
            "keep How long (in seconds) should CPU delay before starting up [5]?\"\\r\"",
            "keep What duplex setting should be used in this case (Full or Half)? [Full Duplex]\"\\r\"",
            "send A\"\"",
            "done",
        ];
        for split in 0..longest(LATER) {
            assert_eq!(converse(Dialog::new(script(true, true)), LATER, split), want, "split {split}");
        }
    }

    #[test]
    fn the_vendor_dialog_one_byte_at_a_time() {
        let mut dialog = Dialog::new(script(true, true));
        let mut actions = Vec::new();
        for byte in LATER.concat().bytes() {
            if actions.last().is_some_and(|a| a == "done") {
                break;
            }
            dialog.push(&[byte]);
            loop {
                match dialog.next_action() {
                    Action::NeedMore => break,
                    action => actions.push(show(&action)),
                }
                if actions.last().is_some_and(|a| a == "done") {
                    break;
                }
            }
        }
        assert_eq!(actions.len(), 15, "{actions:?}");
        assert_eq!(actions[7], "keep Would you like to update the Root Password? [N]\"\\r\"");
        assert_eq!(actions[13..], ["send A\"\"", "done"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever a console prints, the dialog never panics, answers a
        /// bounded number of times and never sends a listed answer twice.
        #[test]
        fn arbitrary_console_text_is_handled(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just(b'\r'), proptest::strategy::Just(b'['), proptest::strategy::Just(b']'),
                proptest::strategy::Just(b'?'), proptest::num::u8::ANY, 0x20u8..0x7f,
            ], 0..64), 0..32)) {
            let mut dialog = Dialog::new(script(true, true));
            let mut sends = 0;
            for chunk in &chunks {
                dialog.push(chunk);
                for _ in 0..100 {
                    match dialog.next_action() {
                        Action::Send(_) => sends += 1,
                        _ => break,
                    }
                }
                let _ = dialog.quiet();
            }
            proptest::prop_assert!(sends <= DEFAULT_MAX_KEPT + 7 + 1);
            proptest::prop_assert!(dialog.summary().answered.len() <= 7);
        }
    }

    #[test]
    fn the_programmers_guide_wording_at_every_split() {
        let guide: Vec<String> = LATER
            .iter()
            .map(|s| {
                s.replace("Reset configuration to default values [N]?", "Reset configuration to default values (Y/N)?")
                    .replace(
                        "Obtain IP settings automatically using DHCP for this interface [Y]?",
                        "Should this target obtain IP settings from the network? [Y]",
                    )
                    .replace("serial number[", "serial number [")
            })
            .collect();
        let guide: Vec<&str> = guide.iter().map(String::as_str).collect();
        for split in 0..longest(&guide) {
            let actions = converse(Dialog::new(script(true, false)), &guide, split);
            assert_eq!(actions.len(), 14, "split {split}: {actions:?}");
            assert_eq!(actions[3], "send N\"\\r\"", "split {split}");
            assert_eq!(actions[9], "keep Set the board's serial number [N99999999]?\"\\r\"", "split {split}");
            assert_eq!(actions[13], "done");
        }
    }

    #[test]
    fn a_rejected_mask_fails_at_once_with_the_device_words() {
        let mut segments = LATER[..6].to_vec();
        segments.push("255.0.255.0\r\nInvalid subnet mask, please try again.\r\nSubnet mask  [0.0.0.0]? ");
        for split in 0..longest(&segments) {
            let actions = converse(Dialog::new(script(true, false)), &segments, split);
            assert_eq!(actions.len(), 7, "split {split}: {actions:?}");
            assert_eq!(
                actions[6],
                "failed: the device rejected the answer `255.255.255.0` to `Subnet mask +\\[`: it printed \
                 `Invalid subnet mask, please try again.`",
                "split {split}"
            );
        }
    }

    #[test]
    fn a_question_asked_again_fails_quoting_the_device_without_a_reject_pattern() {
        let mut segments = LATER[..6].to_vec();
        segments.push("255.0.255.0\r\nThat is not a valid subnet mask\r\nSubnet mask  [0.0.0.0]? ");
        for split in 0..longest(&segments) {
            let actions = converse(Dialog::new(script(false, false)), &segments, split);
            assert_eq!(
                actions.last().unwrap(),
                "failed: the device asked `Subnet mask +\\[` again after the answer `255.255.255.0`: it printed \
                 `That is not a valid subnet mask`",
                "split {split}"
            );
            assert_eq!(actions.iter().filter(|a| a.starts_with("send 255")).count(), 1, "answered once");
        }
        // A default kept and asked again is not kept twice.
        let mut segments = LATER[..9].to_vec();
        segments.push("\r\nValid baud rates are: 9600 19200\r\nSet the baud rate of Serial channels [9600]? ");
        let actions = converse(Dialog::new(script(true, false)), &segments, 0);
        assert_eq!(
            actions.last().unwrap(),
            "failed: the device asked `Set the baud rate of Serial channels [9600]?` again after the answer \
             `(a bare line ending)`: it printed `Valid baud rates are: 9600 19200`"
        );
    }

    #[test]
    fn a_listed_prompt_matched_again_later_is_not_answered_twice() {
        // A 7.4 question that repeats the address prompt's words.
        let mut segments = LATER[..8].to_vec();
        segments.push("\r\nPrimary SNTP Server IP address  [0.0.0.0]? ");
        let actions = converse(Dialog::new(script(true, false)), &segments, 0);
        assert_eq!(
            actions.last().unwrap(),
            "failed: the device asked `IP address +\\[` again after the answer `10.0.0.5`"
        );
    }

    #[test]
    fn an_unknown_prompt_is_never_answered() {
        let mut segments = LATER[..7].to_vec();
        segments.push("10.0.0.1\r\nEnter the SNTP server address: ");
        for split in 0..longest(&segments) {
            let actions = converse(Dialog::new(script(true, false)), &segments, split);
            assert_eq!(
                actions.last().unwrap(),
                "quiet: failed: the device asks `Enter the SNTP server address:`, which the profile does not \
                 answer and which offers no default to keep: add an entry for it",
                "split {split}"
            );
            assert_eq!(actions.len(), 8);
        }
        // Without keep_defaults a default-offering prompt is not answered either.
        let actions = converse(Dialog::new(script(false, false)), &LATER[..8], 3);
        assert_eq!(
            actions.last().unwrap(),
            "quiet: failed: the device asks `Would you like to update the Root Password? [N]`, which the profile \
             does not answer (it offers a default: `keep_defaults: true` would keep it, or add an entry)"
        );
        // A line still arriving (no question mark yet) is waited for.
        let mut dialog = Dialog::new(script(true, false));
        dialog.push(b"Press A to Accept the settings, or M to Modify? ");
        assert!(matches!(dialog.next_action(), Action::Send(_)));
        dialog.push(b"M\r\nPlease wa");
        assert_eq!(dialog.next_action(), Action::NeedMore);
        assert_eq!(dialog.quiet(), Action::NeedMore);
    }

    #[test]
    fn the_cap_on_kept_defaults_ends_a_loop() {
        let mut script = script(true, false);
        script.keep_defaults = Some((re(DEFAULT_PROMPT), 2));
        let actions = converse(Dialog::new(script), &LATER[..11], 0);
        assert_eq!(
            actions.last().unwrap(),
            "failed: more than 2 prompts with a default (the last `Set the board's serial number[N99999999]?`): \
             the dialog looks like a loop"
        );
    }

    #[test]
    fn password_candidates_are_tried_in_order_and_never_shown() {
        let segments = [
            LATER[0],
            LATER[1],
            "********\r\nInvalid password.\r\nEnter the root password: ",
            "**********\r\nInvalid password.\r\nEnter the root password: ",
        ];
        for split in 0..longest(&segments) {
            let mut dialog = Dialog::new(script(true, false));
            let mut sent = Vec::new();
            let mut failure = None;
            for segment in segments {
                let cut = split.min(segment.len());
                for piece in [&segment.as_bytes()[..cut], &segment.as_bytes()[cut..]] {
                    dialog.push(piece);
                    loop {
                        match dialog.next_action() {
                            Action::Send(reply) => sent.push(reply.text),
                            Action::Failed(f) => failure = Some(f),
                            _ => break,
                        }
                        if failure.is_some() {
                            break;
                        }
                    }
                    if failure.is_some() {
                        break;
                    }
                }
            }
            assert_eq!(sent, ["M", "password", "Netsilicon"], "split {split}");
            let text = failure.expect("both refused").to_string();
            assert_eq!(
                text,
                // The factory password is a common word: redaction hides it
                // wherever the device prints it, the safe way round.
                "the device rejected the answer `***` to `Enter the root password`: it printed `Invalid ***.`"
            );
        }
    }

    #[test]
    fn done_without_a_required_prompt_fails_and_optional_ones_are_listed() {
        let segments = [
            LATER[0],
            "M\r\nObtain IP settings automatically using DHCP [Y]? ",
            "N\r\nSaving the changes in NV memory...Done.\r\n",
        ];
        let actions = converse(Dialog::new(script(true, false)), &segments, 0);
        assert_eq!(
            actions.last().unwrap(),
            "failed: the device saved its settings without asking `IP address +\\[`, `Subnet mask +\\[`, \
             `Gateway address +\\[`"
        );
        let mut dialog = Dialog::new(script(true, false));
        for segment in LATER {
            dialog.push(segment.as_bytes());
            while let Action::Send(_) = dialog.next_action() {}
        }
        assert_eq!(dialog.summary().missed_optional, Vec::<String>::new());
        assert_eq!(dialog.summary().kept_defaults.len(), 6);
        assert_eq!(dialog.summary().answered.len(), 7);
    }

    #[test]
    fn after_saving_a_device_that_resets_or_goes_on_is_not_answered() {
        for after in [
            "\r\nSaving the changes in NV memory...Done.\r\n",
            "\r\nSaving the changes in NV memory...Done.\r\nNET+OS Version 7.4\r\nPress any key in 5 seconds to change these settings.\r\n",
        ] {
            let mut segments = LATER[..13].to_vec();
            segments.push(after);
            let actions = converse(Dialog::new(script(true, true)), &segments, 0);
            assert_eq!(actions.last().unwrap(), "quiet: done", "{after:?}");
            assert!(!actions.iter().any(|a| a.starts_with("send A")), "{actions:?}");
        }
        let mut dialog = Dialog::new(script(true, true));
        for segment in &LATER[..13] {
            dialog.push(segment.as_bytes());
            while let Action::Send(_) = dialog.next_action() {}
        }
        dialog.push(b"\r\nSaving the changes in NV memory...Done.\r\n");
        assert_eq!(dialog.next_action(), Action::NeedMore);
        assert_eq!(dialog.timed_out(), Some(Action::Done));
    }

    #[test]
    fn line_endings_follow_the_script_and_single_keys_go_alone() {
        for ending in ["\r", "\n", "\r\n"] {
            let mut script = script(true, false);
            script.line_ending = ending;
            let mut dialog = Dialog::new(script);
            let mut endings = Vec::new();
            for segment in LATER {
                // A console that ends its lines with LF only.
                dialog.push(segment.replace("\r\n", "\n").as_bytes());
                while let Action::Send(reply) = dialog.next_action() {
                    endings.push(reply.line_ending);
                }
            }
            assert_eq!(endings[0], "", "the M goes alone");
            assert!(endings[1..].iter().all(|e| *e == ending), "{ending:?}: {endings:?}");
            assert_eq!(endings.len(), 13);
            assert_eq!(dialog.next_action(), Action::Done);
        }
    }
}
