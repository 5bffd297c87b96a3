//! Sending one file over an opened data connection: the file read on a
//! thread of its own a few fixed-size chunks ahead (memory does not grow with
//! the file), SHA-256 on another thread when asked for, a deadline on a
//! stalled connection, and the server's transfer-complete reply. A file is
//! never reported sent because the data connection closed; verification is
//! [`super::verify`]'s.

use std::path::Path;

use sha2::{Digest, Sha256};
use suppaftp::FtpError as SuppaError;
use tokio::io::AsyncWriteExt;

use super::data::{SendError, open_upload};
use super::data_mode::DataModes;
use super::session::{Session, reply_text};
use super::spec::UploadSpec;
use super::{FILE, UploadFile};
use crate::progress::{Progress, ProgressEvent};

/// Read and write in chunks this big: large enough for full speed on a
/// LAN, small enough that memory stays flat whatever the file size.
pub(super) const CHUNK: usize = 256 * 1024;

/// One attempt at sending a file.
pub(super) struct Outgoing<'a> {
    pub(super) file: &'a UploadFile,
    /// The local file's size, checked before any connection.
    pub(super) size: u64,
    /// Where this attempt starts (REST), 0 for the whole file.
    pub(super) offset: u64,
    /// Compute the whole file's SHA-256 on the way.
    pub(super) hash: bool,
}

/// SHA-256 on its own thread, fed chunk by chunk: hashing as fast as the
/// network sends would otherwise halve the upload rate on a CPU without SHA
/// instructions. The bounded channel keeps memory flat.
struct ParallelHasher {
    chunks: tokio::sync::mpsc::Sender<Vec<u8>>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl ParallelHasher {
    fn start() -> ParallelHasher {
        let (chunks, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            while let Some(chunk) = receiver.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finalize().to_vec()
        });
        ParallelHasher { chunks, thread }
    }

    async fn feed(&self, chunk: Vec<u8>) {
        // The thread only stops when the sender is dropped.
        let _ = self.chunks.send(chunk).await;
    }

    fn finish(self) -> Vec<u8> {
        drop(self.chunks);
        self.thread.join().unwrap_or_default()
    }
}

/// Streams `outgoing.file` from its offset, hashing the whole file on the
/// way when asked; returns the digest.
pub(super) async fn send_file(
    session: &mut Session,
    spec: &UploadSpec,
    modes: &mut DataModes,
    outgoing: &Outgoing<'_>,
    progress: &dyn Progress,
) -> Result<Option<Vec<u8>>, SendError> {
    let Outgoing { file, size, offset, hash } = *outgoing;
    let hasher = hash.then(ParallelHasher::start);
    if let Some(hasher) = &hasher {
        // A resumed upload still reports the hash of the whole file: hash the
        // part already on the server from the local copy.
        let mut prefix = read_ahead(&file.local, 0);
        let mut hashed = 0u64;
        while hashed < offset {
            let Some(chunk) = prefix.recv().await else { break };
            let mut chunk = chunk.map_err(SendError::Local)?;
            chunk.truncate(chunk.len().min((offset - hashed) as usize));
            hashed += chunk.len() as u64;
            hasher.feed(chunk).await;
        }
    }
    let mut stream = open_upload(session, spec, modes, &file.remote, offset, progress).await?;
    let mut sent = offset;
    // A stalled data connection (a cable pulled) must not hang the batch.
    let stall = spec.reply_timeout;
    let mut chunks = read_ahead(&file.local, offset);
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(SendError::Local)?;
        let n = chunk.len();
        match tokio::time::timeout(stall, stream.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(SendError::Broken(format!("data connection: {error} after {sent} bytes"))),
            Err(_) => {
                return Err(SendError::Broken(format!(
                    "data connection stalled for {} s after {sent} bytes",
                    stall.as_secs_f64()
                )));
            }
        }
        if let Some(hasher) = &hasher {
            hasher.feed(chunk).await;
        }
        sent += n as u64;
        progress.report(ProgressEvent::Advanced { kind: FILE, done: sent });
    }
    if sent != size {
        return Err(SendError::Local(std::io::Error::other(format!(
            "the file changed while it was sent ({sent} of {size} bytes)"
        ))));
    }
    match tokio::time::timeout(stall, stream.finish()).await {
        Ok(Ok(())) => Ok(hasher.map(ParallelHasher::finish)),
        Ok(Err(SuppaError::UnexpectedResponse(response))) if (500..600).contains(&response.status.code()) => {
            // 552/451 after the data: the server did not keep the file.
            Err(SendError::Refused { command: "STOR", reply: reply_text(&response) })
        }
        Ok(Err(error)) => Err(SendError::Broken(format!("closing the transfer: {error}"))),
        Err(_) => {
            Err(SendError::Broken(format!("no transfer-complete reply to STOR within {} s", stall.as_secs_f64())))
        }
    }
}

/// Reads the file from `offset` on a thread of its own, a few chunks ahead
/// of the network: one blocking read per chunk instead of a hop to tokio's
/// blocking pool per read, and reading overlaps sending.
pub(super) fn read_ahead(path: &Path, offset: u64) -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        use std::io::{Read, Seek};
        let mut file =
            match std::fs::File::open(&path).and_then(|mut f| f.seek(std::io::SeekFrom::Start(offset)).map(|_| f)) {
                Ok(file) => file,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match file.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            chunk.truncate(filled);
            // The receiver is gone when the transfer failed: stop reading.
            if sender.blocking_send(Ok(chunk)).is_err() || filled < CHUNK {
                return;
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_read_ahead_in_chunks_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.bin");
        let bytes: Vec<u8> = (0..CHUNK + 10).map(|i| i as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let mut chunks = read_ahead(&path, 5);
        let mut read = Vec::new();
        let mut count = 0;
        while let Some(chunk) = chunks.recv().await {
            read.extend(chunk.unwrap());
            count += 1;
        }
        assert_eq!(count, 2);
        assert_eq!(read, bytes[5..]);
    }

    #[tokio::test]
    async fn the_parallel_hash_is_the_files() {
        let hasher = ParallelHasher::start();
        hasher.feed(b"rom".to_vec()).await;
        hasher.feed(b".bin".to_vec()).await;
        assert_eq!(hasher.finish(), Sha256::digest(b"rom.bin").to_vec());
    }
}
