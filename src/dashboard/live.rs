//! Live updates: one task polls the database's change marker
//! ([`Store::version`]) twice a second and bumps a `watch` channel when it
//! moves; each browser's `/events` stream (server-sent events) sends a
//! `change` event per bump. One poll serves every open page, however many.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::watch;

use crate::store::Store;

/// How often the change marker is read: a change reaches pages well
/// within the 2 s the line supervisor expects.
pub const POLL: Duration = Duration::from_millis(500);

/// Polls `store` until `stop` fires, bumping `changes` on every change of
/// its version. A failed poll is retried at the next tick (the database may
/// be restarting); the pages report it themselves.
pub async fn follow(store: Store, changes: watch::Sender<u64>, mut stop: watch::Receiver<bool>) {
    let mut last = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        // A poll may wait seconds for a database that went away: the stop
        // must not wait for it.
        let version = tokio::select! {
            version = store.version(crate::store::now_ms()) => version,
            _ = stop.changed() => return,
        };
        match version {
            Ok(version) => {
                if last.as_ref().is_some_and(|last| *last != version) {
                    changes.send_modify(|count| *count += 1);
                }
                last = Some(version);
            }
            Err(error) => tracing::warn!("dashboard: {error}"),
        }
    }
}

/// The event stream of one page: a `change` event per change, ending when
/// the server stops (the sender is dropped).
pub fn events(changes: watch::Receiver<u64>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(changes, |mut changes| async move {
        changes.changed().await.ok()?;
        let count = *changes.borrow_and_update();
        Some((Ok(Event::default().event("change").data(count.to_string())), changes))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
