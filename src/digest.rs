//! SHA-256 digests as flashline records them: lowercase hex, in journals,
//! reports, station runs, `batch --db` and the simulator's flash records.
//!
//! Only the text form (a profile's digest is taken over the bytes parsed,
//! `profile::LoadedProfile::sha256`); streaming hashes over
//! an upload (ftp) keep their own hasher and call [`hex`] on the result.
//! Not for protocol dumps (`exs::trace::hex` writes socket-log hex).

use sha2::{Digest, Sha256};

/// Lowercase hex of `bytes` (digests in journals and reports).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
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
