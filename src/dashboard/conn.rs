//! How the dashboard holds its connections, so slow or greedy clients cannot
//! hold it: a request's headers must arrive within [`HEADER_TIMEOUT`] (the
//! token is in them, so an unauthenticated client is bounded too), a
//! request's body within [`BODY_TIMEOUT`] and [`BODY_LIMIT`] bytes, and one
//! client address holds at most [`PER_CLIENT`] connections at once (all
//! clients together [`TOTAL`]). A connection over a cap gets a `503` and is
//! closed at once.
//!
//! The accept loop is ours rather than `axum::serve`'s because that one
//! gives hyper no timer, and without a timer hyper applies no header
//! timeout at all.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::lock;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

/// A request's headers must all arrive within this, from its first byte.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body (the login form) must all arrive within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body accepted (the login form is a few dozen bytes).
pub const BODY_LIMIT: usize = 16 * 1024;
/// Connections one client address may hold at once: a browser opens six,
/// a few pages and event streams stay well under this.
pub const PER_CLIENT: usize = 32;
/// Connections all clients together may hold at once.
pub const TOTAL: usize = 512;
/// How long open connections get to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(5);

/// The connections each client address holds now.
#[derive(Clone, Default)]
struct Counts(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One admitted connection; gives its place back when dropped.
struct Slot {
    counts: Counts,
    client: IpAddr,
}

impl Counts {
    fn admit(&self, client: IpAddr) -> Option<Slot> {
        let mut counts = lock(&self.0);
        let total: usize = counts.values().sum();
        let mine = counts.entry(client).or_insert(0);
        if *mine >= PER_CLIENT || total >= TOTAL {
            return None;
        }
        *mine += 1;
        Some(Slot { counts: self.clone(), client })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts.0);
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then the open
/// connections finish their requests (bounded by [`DRAIN`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counts = Counts::default();
    let (closing, closed) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors or a connection reset before it
                // was accepted: the listener is fine, try again shortly.
                Err(error) => {
                    tracing::warn!("dashboard: accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(slot) = counts.admit(peer.ip()) else {
            tracing::warn!("dashboard: {} holds too many connections: one refused", peer.ip());
            // Best effort: the client learns why; a full socket buffer
            // just means it learns it from the close.
            let _ =
                stream.try_write(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let mut connection = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    changed = closed.changed() => {
                        connection.as_mut().graceful_shutdown();
                        if changed.is_err() {
                            let _ = connection.as_mut().await;
                            break;
                        }
                    }
                }
            }
        });
    }
    let _ = closing.send(true);
    let drained = tokio::time::timeout(DRAIN, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// Reads a request's body within [`BODY_TIMEOUT`] and [`BODY_LIMIT`] before
/// any handler sees it: `408` for a body that trickles, `413` for one too big.
pub async fn bounded_body(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(_)) => (StatusCode::PAYLOAD_TOO_LARGE, "the request body is too large or broken\n").into_response(),
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let counts = Counts::default();
        let client: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<Slot> = (0..PER_CLIENT).map(|_| counts.admit(client).expect("within the share")).collect();
        assert!(counts.admit(client).is_none());
        assert!(counts.admit(other).is_some(), "another client is not refused");
        drop(held);
        assert!(counts.admit(client).is_some());
        assert_eq!(counts.0.lock().unwrap().len(), 0, "dropped slots leave no entry behind");
    }
}
