//! Watching a unit's console through one boot (`diagnose --console`): reads
//! what the unit prints into a [`BootLog`] until the boot has settled or the
//! time is up. Read-only: nothing is written to the console, so a watch
//! never interrupts the boot's `Press any key` window.
//!
//! Settled means: a boot banner was seen during the watch, and then the
//! application said how its FTP server fared (`FTP download server is
//! ready.`, `FTP Server not started`), or its network came up and the
//! console then stayed quiet for the settle time, or a flash download
//! completed and the unit announced its reset. The time limit returns what
//! was read: an unfinished boot is evidence too (`still-booting`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::netos::boot_log::{BootLog, BootLogReader};

/// How long a watch lasts and when a boot counts as settled.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// The longest watch.
    pub timeout: Duration,
    /// Quiet after the network came up (with no FTP line) that ends the watch.
    pub settle: Duration,
    /// Quiet after an FTP or reset line that ends the watch.
    pub linger: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            timeout: Duration::from_secs(60),
            settle: Duration::from_secs(5),
            linger: Duration::from_secs(1),
        }
    }
}

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    Settled,
    TimedOut,
    /// The port closed (end of file or a read error).
    Closed,
}

/// Reads `console` until the boot settles or `options.timeout` passes.
/// Each line's time is since the watch started.
pub async fn watch_boot<R: AsyncRead + Unpin>(console: &mut R, options: WatchOptions) -> (BootLog, WatchEnd) {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut reader = BootLogReader::default();
    let mut buf = [0u8; 1024];
    let mut last_byte = started;
    let end = loop {
        let log = reader.log();
        let boot = log.last_boot().filter(|b| b.version.is_some());
        let said_last =
            boot.is_some_and(|b| b.ftp_ready.is_some() || b.ftp_not_started.is_some() || b.resetting.is_some());
        let network_up = boot.is_some_and(|b| b.network_configured.is_some() || !b.addresses.is_empty());
        // A line that ends the story still waits a moment for what follows
        // it in the same burst (the reset line after `FTP download server is ready.`).
        let quiet = if said_last {
            Some(options.linger)
        } else if network_up {
            Some(options.settle)
        } else {
            None
        };
        let wake = quiet.map_or(deadline, |q| deadline.min(last_byte + q));
        if Instant::now() >= wake {
            break if quiet.is_some() && wake < deadline { WatchEnd::Settled } else { WatchEnd::TimedOut };
        }
        match tokio::time::timeout_at(wake, console.read(&mut buf)).await {
            Err(_) => continue, // re-checked at the top
            Ok(Ok(0)) | Ok(Err(_)) => break WatchEnd::Closed,
            Ok(Ok(n)) => {
                last_byte = Instant::now();
                reader.feed(Some(last_byte - started), &buf[..n]);
            }
        }
    };
    (reader.finish(), end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const BOOT: &[u8] = b"NET+OS Version 7.4\r\nAPPLICATION: App [x]\r\n\
Press any key in 5 seconds to change these settings.\r\n";

    #[tokio::test(start_paused = true)]
    async fn settles_on_the_ftp_line() {
        let (mut device, mut console) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            device.write_all(b"old output\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            device.write_all(BOOT).await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            device.write_all(b"Network IP configured.\r\nFTP download server is ready.\r\n").await.unwrap();
            device
        });
        let started = Instant::now();
        let (log, end) = watch_boot(&mut console, WatchOptions::default()).await;
        assert_eq!(end, WatchEnd::Settled);
        let boot = log.last_boot().unwrap();
        assert_eq!(log.line(boot.ftp_ready.unwrap()).at, Some(Duration::from_secs(7)));
        assert_eq!(Instant::now() - started, Duration::from_secs(8), "a second's linger after the last line");
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn settles_after_quiet_once_the_network_is_up_and_times_out_before() {
        let (mut device, mut console) = tokio::io::duplex(4096);
        device.write_all(BOOT).await.unwrap();
        device.write_all(b"Network IP configured.\r\n").await.unwrap();
        let options = WatchOptions { settle: Duration::from_secs(3), ..WatchOptions::default() };
        let before = Instant::now();
        let (log, end) = watch_boot(&mut console, options).await;
        assert_eq!(end, WatchEnd::Settled);
        assert_eq!(Instant::now() - before, Duration::from_secs(3));
        assert!(log.last_boot().unwrap().network_configured.is_some());

        device.write_all(BOOT).await.unwrap();
        let (log, end) = watch_boot(&mut console, options).await;
        assert_eq!(end, WatchEnd::TimedOut, "no network: waits the whole time");
        assert!(log.last_boot().unwrap().network_configured.is_none());
        drop(device);
        let (_, end) = watch_boot(&mut console, options).await;
        assert_eq!(end, WatchEnd::Closed);
    }
}
