//! Port probes by a full TCP `connect()`, for when raw sockets are not
//! allowed. Open means the handshake completed (and was closed at once: on a
//! NET+OS device that briefly takes one of its two FTP sessions, which the SYN
//! probe avoids); refused means the kernel saw a RST; no answer within the
//! timeout means filtered.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{PortResult, PortState, ProbeOptions, Reason, UsedMethod, format_rtt};

/// At most this many connects in flight, far below any descriptor limit.
const MAX_IN_FLIGHT: usize = 256;

/// Probes `ports` on `target` concurrently; results in `ports` order.
pub async fn probe(target: Ipv4Addr, ports: &[u16], options: ProbeOptions) -> Vec<PortResult> {
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, &port) in ports.iter().enumerate() {
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore is never closed");
            (index, probe_one(target, port, options).await)
        });
    }
    let mut results: Vec<Option<PortResult>> = vec![None; ports.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, result)) = joined {
            results[index] = Some(result);
        }
    }
    results
        .into_iter()
        .zip(ports)
        .map(|(result, &port)| {
            result.unwrap_or_else(|| PortResult {
                port,
                state: PortState::Filtered,
                reason: Reason::Timeout,
                rtt: None,
                evidence: "probe task failed".into(),
                method: UsedMethod::Connect,
            })
        })
        .collect()
}

/// One connect with the whole retry budget as its timeout: the kernel
/// retransmits the SYN itself.
pub async fn probe_one(target: Ipv4Addr, port: u16, options: ProbeOptions) -> PortResult {
    let budget = options.timeout * (options.retries + 1);
    let started = Instant::now();
    let attempt = tokio::time::timeout(budget, TcpStream::connect(SocketAddr::from((target, port)))).await;
    let rtt = started.elapsed();
    let (state, reason, rtt, evidence) = match attempt {
        Ok(Ok(stream)) => {
            drop(stream);
            (PortState::Open, Reason::SynAck, Some(rtt), format!("connected {}", format_rtt(rtt)))
        }
        Ok(Err(error)) if error.kind() == ErrorKind::ConnectionRefused => {
            (PortState::Closed, Reason::Refused, Some(rtt), format!("connection refused (RST) {}", format_rtt(rtt)))
        }
        Ok(Err(error)) if matches!(error.kind(), ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable) => {
            (PortState::Filtered, Reason::IcmpUnreachable, Some(rtt), format!("{error} after {}", format_rtt(rtt)))
        }
        Ok(Err(error)) => (PortState::Filtered, Reason::Timeout, None, format!("connect failed: {error}")),
        Err(_) => (PortState::Filtered, Reason::Timeout, None, format!("no answer in {} ms", budget.as_millis())),
    };
    PortResult { port, state, reason, rtt, evidence, method: UsedMethod::Connect }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn open_and_refused_on_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let (_held, closed) = crate::net::closed_loopback_port();
        let options = ProbeOptions { timeout: Duration::from_secs(2), retries: 0 };
        let results = probe(Ipv4Addr::LOCALHOST, &[open, closed], options).await;
        assert_eq!(results[0].port, open);
        assert_eq!(results[0].state, PortState::Open);
        assert_eq!(results[0].reason, Reason::SynAck);
        assert_eq!(results[1].state, PortState::Closed);
        assert_eq!(results[1].reason, Reason::Refused);
        assert!(results[1].evidence.contains("refused"));
        assert!(results.iter().all(|r| r.method == UsedMethod::Connect));
    }
}
