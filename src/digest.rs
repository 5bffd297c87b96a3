//! SHA-256 digests as flashline records them: lowercase hex, in journals,
//! reports, station runs, `batch --db` and the simulator's flash records.
//!
//! Only the text form and the profile file's digest; streaming hashes over
//! an upload (ftp) keep their own hasher and call [`hex`] on the result.
//! Not for protocol dumps (`exs::trace::hex` writes socket-log hex).

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::input_file;

/// Lowercase hex of `bytes` (digests in journals and reports).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// SHA-256 (hex) of a profile file's bytes: the profile that ran, as
/// journals, reports, station runs and `batch --db` record it (read with the
/// profile's size cap).
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let bytes = input_file::read(path, &input_file::PROFILE).map_err(std::io::Error::other)?;
    Ok(sha256_hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00ab0f");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
