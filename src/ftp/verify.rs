//! Verification of an uploaded file, as the profile's `verify` asks: the
//! server's SIZE against the local size, or the file read back and its
//! SHA-256 compared with the one computed while sending. An upload is
//! reported only after this passed; the command to use instead is named when
//! the server cannot do the check asked for.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::send::CHUNK;
use super::session::Session;
use super::spec::UploadSpec;
use super::{FtpError, FtpVerify, UploadFile};
use crate::digest::hex;

/// Checks `file` on the server; returns how, e.g. `size 1048576 matches`.
pub(super) async fn verify(
    session: &mut Session,
    spec: &UploadSpec,
    file: &UploadFile,
    size: u64,
    digest: Option<&[u8]>,
) -> Result<String, FtpError> {
    let failed = |detail: String| FtpError::VerifyFailed { remote: file.remote.clone(), detail };
    let waited = spec.reply_timeout;
    let late = |what: &str, waited: Duration| failed(format!("no reply to {what} within {} s", waited.as_secs_f64()));
    match spec.verify {
        FtpVerify::None => Ok("none (the profile says so)".into()),
        FtpVerify::Size => match tokio::time::timeout(waited, session.ftp.size(&file.remote)).await {
            Err(_) => Err(late("SIZE", waited)),
            Ok(Ok(n)) if n as u64 == size => Ok(format!("size {size} matches")),
            Ok(Ok(n)) => Err(failed(format!("the server has {n} bytes, the local file {size}"))),
            Ok(Err(error)) => Err(failed(format!(
                "SIZE failed ({error}); use verify: readback, or none if the server can do neither"
            ))),
        },
        FtpVerify::Readback => {
            // The mode's command and RETR, plus the data connection.
            let opening = waited * 2 + spec.connect_timeout;
            let mut stream = match tokio::time::timeout(opening, session.ftp.retr_as_stream(&file.remote)).await {
                Err(_) => return Err(late("RETR", opening)),
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    return Err(failed(format!(
                        "RETR failed ({e}); use verify: size or none if the server cannot send files back"
                    )));
                }
            };
            let mut hasher = Sha256::new();
            let mut buffer = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = match tokio::time::timeout(waited, stream.read(&mut buffer)).await {
                    Err(_) => {
                        return Err(failed(format!(
                            "reading back stalled for {} s after {total} bytes",
                            waited.as_secs_f64()
                        )));
                    }
                    Ok(read) => read.map_err(|e| failed(format!("reading back: {e}")))?,
                };
                if n == 0 {
                    break;
                }
                total += n as u64;
                hasher.update(&buffer[..n]);
            }
            match tokio::time::timeout(waited, stream.finish()).await {
                Err(_) => return Err(late("the end of RETR", waited)),
                Ok(result) => result.map_err(|e| failed(format!("closing the read-back: {e}")))?,
            }
            let back = hasher.finalize().to_vec();
            let Some(digest) = digest else {
                return Err(failed("no hash of the sent file to compare with".into()));
            };
            if back == digest {
                Ok(format!("sha256 of a read-back ({total} bytes) matches"))
            } else {
                Err(failed(format!("read back {total} bytes with sha256 {}, sent {}", hex(&back), hex(digest))))
            }
        }
    }
}
