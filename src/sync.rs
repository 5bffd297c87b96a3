//! A mutex lock that outlives a panic elsewhere.
//!
//! flashline's mutexes guard small state (progress bars, counters, a
//! simulator's maps, a journal handle) that every writer leaves consistent
//! between statements, so a panic in one task while holding the lock leaves
//! nothing half-done worth refusing: [`lock`] takes the guard from a
//! poisoned mutex and goes on. Only `std::sync::Mutex`; tokio's has no
//! poisoning.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_locked_does_not_lock_the_state_away() {
        let counter = std::sync::Arc::new(Mutex::new(1));
        let held = counter.clone();
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("a task fails while holding the lock");
        })
        .join();
        assert!(counter.is_poisoned());
        *lock(&counter) += 1;
        assert_eq!(*lock(&counter), 2);
    }
}
