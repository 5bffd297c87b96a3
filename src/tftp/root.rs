//! Confining request names to the served folder: a name that is absolute,
//! holds a `..` component, or resolves (through symlinks) outside the root
//! is refused before any file is opened. This module decides; it does not
//! read or write the files.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a requested name is refused.
#[derive(Debug, thiserror::Error)]
pub enum PathRefusal {
    #[error("{name:?} is an absolute path")]
    Absolute { name: String },
    #[error("{name:?} leaves the served folder")]
    Escapes { name: String },
    #[error("{name:?} does not exist")]
    NotFound { name: String },
    #[error("{name:?}: {source}")]
    Io { name: String, source: io::Error },
}

/// The served folder, resolved once (symlinks in the root's own path are
/// fine; symlinks below it must stay below it).
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
}

impl Root {
    pub fn new(dir: &Path) -> io::Result<Root> {
        let canonical = dir.canonicalize()?;
        if !canonical.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a folder", dir.display())));
        }
        Ok(Root { canonical })
    }

    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// The lexical checks every request gets: relative, no `..`, no empty
    /// name. Returns the joined path (not yet resolved).
    fn join(&self, name: &str) -> Result<PathBuf, PathRefusal> {
        let relative = Path::new(name);
        if relative.is_absolute() {
            return Err(PathRefusal::Absolute { name: name.to_string() });
        }
        let mut joined = self.canonical.clone();
        for component in relative.components() {
            match component {
                Component::Normal(part) => joined.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(PathRefusal::Escapes { name: name.to_string() });
                }
            }
        }
        if joined == self.canonical {
            return Err(PathRefusal::NotFound { name: name.to_string() });
        }
        Ok(joined)
    }

    /// An existing file to read: resolved, and still inside the root.
    pub fn file_to_read(&self, name: &str) -> Result<PathBuf, PathRefusal> {
        let joined = self.join(name)?;
        let resolved = resolve(&joined, name)?;
        if !resolved.starts_with(&self.canonical) {
            return Err(PathRefusal::Escapes { name: name.to_string() });
        }
        Ok(resolved)
    }

    /// A file to write: its folder must exist inside the root, and the name
    /// itself, when it exists, must not be a symlink leading out.
    pub fn file_to_write(&self, name: &str) -> Result<PathBuf, PathRefusal> {
        let joined = self.join(name)?;
        if joined.symlink_metadata().is_ok() {
            // An existing name (a file or a symlink): judged as a read is.
            return self.file_to_read(name);
        }
        let parent = joined.parent().unwrap_or(&self.canonical);
        let file_name = joined.file_name().ok_or_else(|| PathRefusal::Escapes { name: name.to_string() })?;
        let parent = resolve(parent, name)?;
        if !parent.starts_with(&self.canonical) {
            return Err(PathRefusal::Escapes { name: name.to_string() });
        }
        Ok(parent.join(file_name))
    }
}

/// The path with every symlink followed; a missing one is "not found".
fn resolve(path: &Path, name: &str) -> Result<PathBuf, PathRefusal> {
    path.canonicalize().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => PathRefusal::NotFound { name: name.to_string() },
        _ => PathRefusal::Io { name: name.to_string(), source },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.cfg"), b"a").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("outdir")).unwrap();
        std::os::unix::fs::symlink("sub/a.cfg", dir.path().join("inside")).unwrap();
        let root = Root::new(dir.path()).unwrap();

        assert!(root.file_to_read("sub/a.cfg").is_ok());
        assert!(root.file_to_read("./sub/a.cfg").is_ok());
        assert!(root.file_to_read("inside").is_ok(), "a symlink within the root is fine");
        assert!(matches!(root.file_to_read("/etc/passwd"), Err(PathRefusal::Absolute { .. })));
        assert!(matches!(root.file_to_read("../x"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_read("sub/../../x"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_read("sub/../sub/a.cfg"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_read("out"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_read("outdir/secret"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_read("missing"), Err(PathRefusal::NotFound { .. })));
        assert!(matches!(root.file_to_read("."), Err(PathRefusal::NotFound { .. })));

        assert!(root.file_to_write("new.bin").is_ok());
        assert!(root.file_to_write("sub/new.bin").is_ok());
        assert!(matches!(root.file_to_write("out"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_write("outdir/new"), Err(PathRefusal::Escapes { .. })));
        assert!(matches!(root.file_to_write("nodir/new"), Err(PathRefusal::NotFound { .. })));
    }
}
