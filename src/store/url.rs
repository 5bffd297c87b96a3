//! A database URL as the user gives it (`sqlite:PATH`, `postgres://...`),
//! which backend it names, and the form that may be shown: the password
//! replaced by `***`, wherever it sits (`user:PASSWORD@`, `password=...`).
//! Every message that names a database uses [`DbUrl::redacted`].

use std::fmt;
use std::path::{Path, PathBuf};

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL. `Debug` and `Display` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    /// The URL sqlx connects with (a SQLite path made absolute).
    url: String,
    backend: Backend,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "`{0}` is not a database URL: give `sqlite:PATH` (a file, created when missing) or `postgres://USER@HOST[:PORT]/DB`"
    )]
    Scheme(String),
    #[error("`{0}` names no SQLite file: give `sqlite:PATH`")]
    NoPath(String),
    #[error("`{0}`: a SQLite database has no user or password: give `sqlite:PATH`")]
    SqliteUser(String),
}

impl crate::failure::Classify for UrlError {
    fn class(&self) -> crate::failure::FailureClass {
        crate::failure::FailureClass::Input
    }
}

impl DbUrl {
    /// Parses `text`; a relative SQLite path is taken from `base` (the
    /// station file's folder, or the current directory for `--db`).
    pub fn parse(text: &str, base: &Path) -> Result<DbUrl, UrlError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("sqlite:") {
            if let Some(after) = rest.strip_prefix("//")
                && after.split('/').next().is_some_and(|authority| authority.contains('@'))
            {
                return Err(UrlError::SqliteUser(redact(text)));
            }
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
            if path.is_empty() {
                return Err(UrlError::NoPath(redact(text)));
            }
            let path = if Path::new(path).is_absolute() { PathBuf::from(path) } else { base.join(path) };
            // `mode=rwc`: create the file on first use, as the default
            // `flashline.db` beside the station file must be.
            let query = query.map_or("mode=rwc".to_string(), str::to_string);
            return Ok(DbUrl { url: format!("sqlite://{}?{query}", path.display()), backend: Backend::Sqlite });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DbUrl { url: text.to_string(), backend: Backend::Postgres });
        }
        Err(UrlError::Scheme(redact(text)))
    }

    /// The SQLite database at `path`.
    pub fn sqlite(path: &Path) -> DbUrl {
        DbUrl { url: format!("sqlite://{}?mode=rwc", path.display()), backend: Backend::Sqlite }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password: only for connecting, never for printing.
    pub(crate) fn secret(&self) -> &str {
        &self.url
    }

    /// The URL as it may be shown.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The password the URL carries, so messages can be scrubbed of it.
    pub(crate) fn password(&self) -> Option<String> {
        password_of(&self.url)
    }

    /// `message` with the password (if any) replaced by `***`: a driver's
    /// error may quote what it was given.
    pub fn scrub(&self, message: &str) -> String {
        let mut message = message.replace(&self.url, &self.redacted());
        if let Some(password) = self.password().filter(|p| p.len() >= 3) {
            message = message.replace(&password, "***");
        }
        message
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

fn password_of(url: &str) -> Option<String> {
    let (start, end) = secret_spans(url).into_iter().next()?;
    Some(url[start..end].trim_matches('\'').to_string())
}

/// Where the passwords in `text` are, as byte ranges: the `PASSWORD` of
/// `scheme://user:PASSWORD@host`, and the value of every key ending in
/// `password` (`password=`, `sslpassword=`, any case) in a query string
/// (`?a=1&password=x`) or a libpq key-value string (`host=db password='x y'`).
fn secret_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if let Some(index) = text.find("://") {
        let rest = &text[index + 3..];
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            spans.push((index + 3 + colon + 1, index + 3 + at));
        }
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at_key = (i == 0 || matches!(bytes[i - 1], b'?' | b'&' | b';' | b' ' | b'\t' | b'\n' | b'\r'))
            && bytes[i].is_ascii_alphabetic();
        if !at_key {
            i += 1;
            continue;
        }
        let key_end = i + bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let mut j = key_end;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'=' || !text[i..key_end].to_ascii_lowercase().ends_with("password") {
            i = key_end;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j] == b' ' {
            j += 1;
        }
        let value_start = j;
        if bytes.get(j) == Some(&b'\'') {
            // libpq's quoted value: up to the closing quote, `\'` escaped.
            j += 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(bytes.len());
        } else {
            while j < bytes.len() && !matches!(bytes[j], b'&' | b' ' | b'\t' | b'\n' | b'\r') {
                j += 1;
            }
        }
        spans.push((value_start, j));
        i = j;
    }
    spans.sort_unstable();
    spans
}

/// `url` with any password replaced by `***`: a URL's user info, a query
/// string's or a libpq key-value string's `password=` (see [`secret_spans`]).
pub fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for (start, end) in secret_spans(url) {
        if start < copied {
            continue;
        }
        out.push_str(&url[copied..start]);
        out.push_str("***");
        copied = end;
    }
    out.push_str(&url[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let url = DbUrl::parse("postgres://line:s3cret@db.plant:5432/flash?sslmode=prefer", Path::new("/")).unwrap();
        assert_eq!(url.to_string(), "postgres://line:***@db.plant:5432/flash?sslmode=prefer");
        assert_eq!(format!("{url:?}"), "DbUrl(postgres://line:***@db.plant:5432/flash?sslmode=prefer)");
        assert_eq!(url.scrub("auth failed for s3cret"), "auth failed for ***");
        let url = DbUrl::parse("postgres://line@db/flash?password=hunter22&x=1", Path::new("/")).unwrap();
        assert_eq!(url.redacted(), "postgres://line@db/flash?password=***&x=1");
        assert_eq!(url.password().as_deref(), Some("hunter22"));
        assert_eq!(redact("postgres://u:p%40ss@h/d"), "postgres://u:***@h/d");
    }

    #[test]
    fn every_form_of_a_password_is_redacted() {
        // libpq's key-value form, quoted or not, any key case, sslpassword too.
        let text = "host=db.plant port=5432 user=line password=Hunter2x dbname=units";
        assert_eq!(redact(text), "host=db.plant port=5432 user=line password=*** dbname=units");
        assert_eq!(redact("host=db PASSWORD = 'a b\\'c' x=1"), "host=db PASSWORD = *** x=1");
        assert_eq!(redact("sslpassword=k3y host=db"), "sslpassword=*** host=db");
        assert_eq!(
            redact("postgres://u@h/d?sslmode=require&password=Pw1&x=2"),
            "postgres://u@h/d?sslmode=require&password=***&x=2"
        );
        // Not a password: a key that only contains the word.
        assert_eq!(redact("password_hint=x"), "password_hint=x");
        for text in [text, "sqlite://user:Hunter2x@/tmp/x.db", "sqlite://user:Hunter2x@host/x.db"] {
            let shown = match DbUrl::parse(text, Path::new("/")) {
                Ok(url) => url.to_string(),
                Err(error) => error.to_string(),
            };
            assert!(!shown.contains("Hunter2x"), "{shown}");
        }
        let error = DbUrl::parse("sqlite://user:Hunter2x@/tmp/x.db", Path::new("/")).unwrap_err();
        assert_eq!(error, UrlError::SqliteUser("sqlite://user:***@/tmp/x.db".into()));
        let error = DbUrl::parse(text, Path::new("/")).unwrap_err().to_string();
        assert!(error.contains("password=***"), "{error}");
    }

    #[test]
    fn sqlite_paths_start_from_the_base() {
        let url = DbUrl::parse("sqlite:line.db", Path::new("/srv/station")).unwrap();
        assert_eq!(url.secret(), "sqlite:///srv/station/line.db?mode=rwc");
        assert_eq!(url.backend(), Backend::Sqlite);
        let url = DbUrl::parse("sqlite:///abs/x.db", Path::new("/srv")).unwrap();
        assert_eq!(url.secret(), "sqlite:///abs/x.db?mode=rwc");
        assert!(matches!(DbUrl::parse("sqlite:", Path::new("/")), Err(UrlError::NoPath(_))));
        let error = DbUrl::parse("mysql://u:pw@h/d", Path::new("/")).unwrap_err().to_string();
        assert!(error.contains("mysql://u:***@h/d") && !error.contains("pw@"), "{error}");
    }
}
