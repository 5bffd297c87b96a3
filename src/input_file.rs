//! Reading a file the user named: a profile, station file, inventory, image,
//! journal, EXS configuration file or boot log.
//!
//! Every such read goes through here, so each gets the same three guards:
//! - the path must be a regular file. A directory, a FIFO, a device or a
//!   socket is refused by name ("is a FIFO"), and never opened for reading
//!   in a way that could block: the path is `stat`ed first (opening a serial
//!   device can toggle its modem lines), then opened with `O_NONBLOCK` (a
//!   FIFO swapped in between cannot hang the open) and checked again with
//!   `fstat` on the descriptor actually read;
//! - the file is read with a cap that fits its [`Kind`] (a profile holds a
//!   few KiB, an image a few MiB), so `/proc` files or one that grows while
//!   read cannot exhaust memory either;
//! - an image may not be empty: a 0-byte image flashed is a unit that does
//!   not boot.
//!
//! A file that is missing or that this user may not read is the bench's
//! problem (environment); a path that names the wrong kind of thing, a file
//! too large or an empty image is the user's (bad input). This module does
//! not parse what it reads.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::failure::{Classify, FailureClass};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// What a file is for: the noun errors use, and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The noun in messages: `profile`, `image`, ...
    pub noun: &'static str,
    /// The most bytes such a file may hold.
    pub limit: u64,
    /// Whether a file of 0 bytes is acceptable.
    pub may_be_empty: bool,
}

/// A device profile (YAML). Real ones are a few KiB.
pub const PROFILE: Kind = Kind { noun: "profile", limit: 16 * MIB, may_be_empty: true };
/// A station file (YAML).
pub const STATION: Kind = Kind { noun: "station file", limit: 16 * MIB, may_be_empty: true };
/// An inventory (YAML or CSV): a line of a few hundred bytes per device.
pub const INVENTORY: Kind = Kind { noun: "inventory", limit: 16 * MIB, may_be_empty: true };
/// An image sent to a device (serial or FTP). NET+OS flash is 2-16 MiB and
/// XMODEM at 115200 baud moves about 11 KiB/s: 64 MiB is beyond any real one.
pub const IMAGE: Kind = Kind { noun: "image", limit: 64 * MIB, may_be_empty: false };
/// A batch journal: a line of well under 1 KiB per finished step.
pub const JOURNAL: Kind = Kind { noun: "journal", limit: 256 * MIB, may_be_empty: true };
/// A CSP controller's configuration file (text settings).
pub const EXS_CONFIG: Kind = Kind { noun: "configuration file", limit: 16 * MIB, may_be_empty: true };
/// A file holding a secret (`${file:...}`, `--password-file`): one line.
pub const SECRET: Kind = Kind { noun: "secret file", limit: 64 * KIB, may_be_empty: true };
/// A saved boot log (a console capture).
pub const BOOT_LOG: Kind = Kind { noun: "boot log", limit: 16 * MIB, may_be_empty: true };

/// Why a named file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputFileError {
    /// Missing, or not readable by this user (environment).
    #[error("cannot read {noun} {}: {source}", path.display())]
    Unreadable {
        noun: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory, FIFO, device or socket (bad input).
    #[error("{noun} {} {what}, not a regular file", path.display())]
    NotRegular { noun: &'static str, path: PathBuf, what: &'static str },
    /// More bytes than its kind may hold (bad input).
    /// `bytes` is the size `stat` gave, or `None` when only reading found
    /// out (a `/proc` file, a file growing while read).
    #[error("{noun} {} is larger than {}{}", path.display(), size(*limit), bytes.map(|b| format!(" ({b} bytes)")).unwrap_or_default())]
    TooLarge { noun: &'static str, path: PathBuf, bytes: Option<u64>, limit: u64 },
    /// An image of 0 bytes (bad input).
    #[error("{noun} {} is empty (0 bytes): there is nothing to send", path.display())]
    Empty { noun: &'static str, path: PathBuf },
}

impl Classify for InputFileError {
    fn class(&self) -> FailureClass {
        match self {
            InputFileError::Unreadable { .. } => FailureClass::Environment,
            InputFileError::NotRegular { .. } | InputFileError::TooLarge { .. } | InputFileError::Empty { .. } => {
                FailureClass::Input
            }
        }
    }
}

impl InputFileError {
    /// The file does not exist (a journal not yet written, say).
    pub fn is_not_found(&self) -> bool {
        matches!(self, InputFileError::Unreadable { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// What is wrong, without the noun and path: `does not exist`, `is a
    /// directory`, `is empty`..., for messages that already name the file.
    pub fn reason(&self) -> String {
        match self {
            InputFileError::Unreadable { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "does not exist".into()
            }
            InputFileError::Unreadable { source, .. } => format!("cannot be read: {source}"),
            InputFileError::NotRegular { what, .. } => format!("{what}, not a regular file"),
            InputFileError::TooLarge { limit, .. } => format!("is larger than {}", size(*limit)),
            InputFileError::Empty { .. } => "is empty (0 bytes)".into(),
        }
    }
}

/// `16 MiB`, `64 KiB`: limits as people write them.
fn size(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// `is a directory`, `is a FIFO`, ... for anything that is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("is a directory")
    } else if kind.is_fifo() {
        Some("is a FIFO")
    } else if kind.is_char_device() {
        Some("is a character device")
    } else if kind.is_block_device() {
        Some("is a block device")
    } else if kind.is_socket() {
        Some("is a socket")
    } else {
        Some("is not a regular file")
    }
}

/// The size and type checks shared by [`check`] and [`open`].
fn check_meta(path: &Path, kind: &Kind, meta: &Metadata) -> Result<u64, InputFileError> {
    if let Some(what) = not_regular(meta) {
        return Err(InputFileError::NotRegular { noun: kind.noun, path: path.to_path_buf(), what });
    }
    let bytes = meta.len();
    if bytes > kind.limit {
        return Err(InputFileError::TooLarge {
            noun: kind.noun,
            path: path.to_path_buf(),
            bytes: Some(bytes),
            limit: kind.limit,
        });
    }
    if bytes == 0 && !kind.may_be_empty {
        return Err(InputFileError::Empty { noun: kind.noun, path: path.to_path_buf() });
    }
    Ok(bytes)
}

/// Checks `path` without opening it (validation before a run): it exists,
/// is a regular file, and its size fits `kind`. Returns the size.
pub fn check(path: &Path, kind: &Kind) -> Result<u64, InputFileError> {
    let unreadable = |source| InputFileError::Unreadable { noun: kind.noun, path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    check_meta(path, kind, &meta)
}

/// Why `path` cannot be a file named in a profile or inventory (`does not
/// exist`, `is a directory`, `is a FIFO`...), or `None` when it is a regular
/// file. Only the type: what reads it later applies its kind's limits.
pub fn unusable(path: &Path) -> Option<String> {
    const ANY: Kind = Kind { noun: "file", limit: u64::MAX, may_be_empty: true };
    check(path, &ANY).err().map(|error| error.reason())
}

/// An open regular file and its size when opened.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    pub bytes: u64,
}

/// Opens `path` for reading after checking it fits `kind`; the checks are
/// made again on the open descriptor, so what is read is what was checked.
pub fn open(path: &Path, kind: &Kind) -> Result<Opened, InputFileError> {
    check(path, kind)?;
    let unreadable = |source| InputFileError::Unreadable { noun: kind.noun, path: path.to_path_buf(), source };
    // O_NONBLOCK: if the path became a FIFO since the stat, the open returns
    // at once instead of waiting for a writer (fstat below refuses it). It
    // changes nothing for reading a regular file. O_NOCTTY: never become a
    // terminal's controlling process by opening it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let bytes = check_meta(path, kind, &meta)?;
    Ok(Opened { file, bytes })
}

/// Opens `path` as [`open`] does and reads its first byte, so a file that
/// opens but cannot be read fails here; returns its size. For a file sent
/// in a stream later (an FTP upload): everything about it that can fail
/// fails before any connection is made.
pub fn probe(path: &Path, kind: &Kind) -> Result<u64, InputFileError> {
    let mut opened = open(path, kind)?;
    let mut first = [0u8; 1];
    match opened.file.read(&mut first) {
        // Emptied since the stat: nothing to send after all.
        Ok(0) if !kind.may_be_empty => Err(InputFileError::Empty { noun: kind.noun, path: path.to_path_buf() }),
        Ok(_read) => Ok(opened.bytes),
        Err(source) => Err(InputFileError::Unreadable { noun: kind.noun, path: path.to_path_buf(), source }),
    }
}

/// Reads the whole of `path`, refusing what does not fit `kind`. The read
/// stops one byte past the limit whatever `stat` said (a `/proc` file
/// reports 0 bytes; a file may grow while read).
pub fn read(path: &Path, kind: &Kind) -> Result<Vec<u8>, InputFileError> {
    let opened = open(path, kind)?;
    let mut bytes = Vec::with_capacity(opened.bytes as usize);
    opened.file.take(kind.limit + 1).read_to_end(&mut bytes).map_err(|source| InputFileError::Unreadable {
        noun: kind.noun,
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > kind.limit {
        return Err(InputFileError::TooLarge {
            noun: kind.noun,
            path: path.to_path_buf(),
            bytes: None,
            limit: kind.limit,
        });
    }
    if bytes.is_empty() && !kind.may_be_empty {
        return Err(InputFileError::Empty { noun: kind.noun, path: path.to_path_buf() });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Kind = Kind { noun: "thing", limit: 8, may_be_empty: false };

    fn fifo(dir: &Path) -> PathBuf {
        let path = dir.join("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        path
    }

    fn class_and_text(error: InputFileError) -> (FailureClass, String) {
        (error.class(), error.to_string())
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345678").unwrap();
        assert_eq!(read(&path, &SMALL).unwrap(), b"12345678");
        assert_eq!(probe(&path, &SMALL).unwrap(), 8);
        assert_eq!(check(&path, &SMALL).unwrap(), 8);
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = fifo(dir.path());
        // Were it opened for a blocking read, this test would hang (nextest's
        // timeout) instead of failing.
        for result in
            [read(&path, &SMALL).map(|_| ()), probe(&path, &SMALL).map(|_| ()), check(&path, &SMALL).map(|_| ())]
        {
            let (class, text) = class_and_text(result.unwrap_err());
            assert_eq!(class, FailureClass::Input);
            assert_eq!(text, format!("thing {} is a FIFO, not a regular file", path.display()));
        }
    }

    #[test]
    fn a_directory_and_devices_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (class, text) = class_and_text(read(dir.path(), &SMALL).unwrap_err());
        assert_eq!(
            (class, text),
            (FailureClass::Input, format!("thing {} is a directory, not a regular file", dir.path().display()))
        );
        let (class, text) = class_and_text(read(Path::new("/dev/zero"), &SMALL).unwrap_err());
        assert_eq!(
            (class, text.as_str()),
            (FailureClass::Input, "thing /dev/zero is a character device, not a regular file")
        );
    }

    #[test]
    fn too_large_and_empty_are_bad_input_and_missing_is_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, [0u8; 9]).unwrap();
        let (class, text) = class_and_text(read(&big, &SMALL).unwrap_err());
        assert_eq!(
            (class, text),
            (FailureClass::Input, format!("thing {} is larger than 8 bytes (9 bytes)", big.display()))
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let (class, text) = class_and_text(probe(&empty, &SMALL).unwrap_err());
        assert_eq!(
            (class, text),
            (FailureClass::Input, format!("thing {} is empty (0 bytes): there is nothing to send", empty.display()))
        );
        assert_eq!(read(&empty, &Kind { may_be_empty: true, ..SMALL }).unwrap(), b"");
        let missing = read(&dir.path().join("missing"), &SMALL).unwrap_err();
        assert!(missing.is_not_found());
        assert_eq!(missing.reason(), "does not exist");
        assert_eq!(missing.class(), FailureClass::Environment);
    }

    #[test]
    fn a_file_whose_size_is_not_known_is_still_capped() {
        // procfs reports 0 bytes for files that hold more: the cap holds on
        // what is read, not on what stat said.
        let status = Path::new("/proc/self/status");
        assert_eq!(std::fs::metadata(status).unwrap().len(), 0);
        let error = read(status, &Kind { may_be_empty: true, ..SMALL }).unwrap_err();
        assert_eq!(error.to_string(), "thing /proc/self/status is larger than 8 bytes");
    }

    #[test]
    fn unusable_says_what_the_path_is() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(unusable(&file), None);
        assert_eq!(unusable(dir.path()).as_deref(), Some("is a directory, not a regular file"));
        assert_eq!(unusable(&fifo(dir.path())).as_deref(), Some("is a FIFO, not a regular file"));
        assert_eq!(unusable(&dir.path().join("nothing")).as_deref(), Some("does not exist"));
    }

    #[test]
    fn limits_are_written_as_people_write_them() {
        assert_eq!(size(64 * MIB), "64 MiB");
        assert_eq!(size(64 * KIB), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
