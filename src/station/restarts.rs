//! How often a fixture's loop that ended abnormally (its task panicked) is
//! started again, decided without I/O: a few times within a window, then
//! the fixture is given up for the shift, so a loop that panics at once
//! again and again cannot spin.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A fixture's restarts within the last `window`.
#[derive(Debug, Clone)]
pub struct Restarts {
    most: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

/// What to do after the loop ended abnormally at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start the loop again; the `nth` restart within the window.
    Restart { nth: usize },
    /// Too many within the window: the fixture is failed for the shift.
    GiveUp { within: Duration },
}

impl Restarts {
    /// At most `most` restarts within any `window`.
    pub fn new(most: usize, window: Duration) -> Restarts {
        Restarts { most, window, recent: VecDeque::new() }
    }

    /// The loop ended abnormally `at`: restart it, or give up.
    pub fn after_failure(&mut self, at: Instant) -> Verdict {
        while self.recent.front().is_some_and(|&then| at.saturating_duration_since(then) >= self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.most {
            return Verdict::GiveUp { within: self.window };
        }
        self.recent.push_back(at);
        Verdict::Restart { nth: self.recent.len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn restarts_up_to_the_bound_then_gives_up() {
        let start = Instant::now();
        let mut restarts = Restarts::new(3, 10 * MINUTE);
        for nth in 1..=3 {
            assert_eq!(restarts.after_failure(start + nth as u32 * MINUTE), Verdict::Restart { nth });
        }
        assert_eq!(restarts.after_failure(start + 4 * MINUTE), Verdict::GiveUp { within: 10 * MINUTE });
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let start = Instant::now();
        let mut restarts = Restarts::new(2, 10 * MINUTE);
        assert_eq!(restarts.after_failure(start), Verdict::Restart { nth: 1 });
        assert_eq!(restarts.after_failure(start + MINUTE), Verdict::Restart { nth: 2 });
        // The first is 10 minutes old: out of the window.
        assert_eq!(restarts.after_failure(start + 10 * MINUTE), Verdict::Restart { nth: 2 });
        assert_eq!(restarts.after_failure(start + 10 * MINUTE), Verdict::GiveUp { within: 10 * MINUTE });
        // Long after, the fixture may be restarted again.
        assert_eq!(restarts.after_failure(start + 60 * MINUTE), Verdict::Restart { nth: 1 });
    }

    #[test]
    fn no_restart_allowed_gives_up_at_once() {
        let mut restarts = Restarts::new(0, MINUTE);
        assert_eq!(restarts.after_failure(Instant::now()), Verdict::GiveUp { within: MINUTE });
    }
}
