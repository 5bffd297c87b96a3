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
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            return Some(password.to_string());
        }
    }
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("password=")).map(str::to_string)
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            out = format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..]);
        }
    }
    if let Some((head, query)) = out.clone().split_once('?') {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| if pair.starts_with("password=") { "password=***".to_string() } else { pair.to_string() })
            .collect();
        out = format!("{head}?{}", pairs.join("&"));
    }
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
