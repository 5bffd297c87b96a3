//! A blocking byte source and sink (a PTY controller, a child's stdout and
//! stdin) as one async stream: two threads do blocking reads of `from` and
//! writes to `to`, so a byte the other side writes is taken the moment it
//! exists. Shared by the serial tests and the serial throughput benchmark
//! (`benches/serial_throughput.rs` includes this file by path).
//!
//! Both threads end on their own: the reader when `from` ends or fails (a
//! PTY whose device end closed reads EIO), the writer when our side of the
//! stream is dropped (its read returns 0) or `to` fails.

use std::io::{Read, Write};

/// Our end of the line to `from` / `to`, as an async stream.
pub fn relay(mut from: impl Read + Send + 'static, mut to: impl Write + Send + 'static) -> tokio::io::DuplexStream {
    let (ours, relay) = tokio::io::duplex(1 << 16);
    let (mut relay_read, mut relay_write) = tokio::io::split(relay);
    let handle = tokio::runtime::Handle::current();
    let reader_handle = handle.clone();
    std::thread::spawn(move || {
        use tokio::io::AsyncWriteExt;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if reader_handle.block_on(relay_write.write_all(&buf[..n])).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = handle.block_on(relay_read.read(&mut buf)) {
            // Flushed at once: a pipe to a child is buffered by nothing
            // else, and a reply held back would look like a lost one.
            if to.write_all(&buf[..n]).is_err() || to.flush().is_err() {
                break;
            }
        }
    });
    ours
}
