//! The access token: read from `--token-file`, presented by every request
//! as `Authorization: Bearer TOKEN` or as the cookie the login form sets.
//! Compared in constant time; never logged, never echoed into a page.

use std::fmt;
use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};

/// The cookie the login form sets.
pub const COOKIE_NAME: &str = "flashline_token";

/// Fewer characters than this are guessable over a network.
pub const MIN_LEN: usize = 16;

/// A token file that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the token file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "the token file {path} holds {len} characters: a token needs at least {MIN_LEN} (e.g. `openssl rand -hex 24`)"
    )]
    TooShort { path: PathBuf, len: usize },
    #[error("the token file {path} holds characters a header or cookie cannot carry: use letters, digits and -._~+/=")]
    BadCharacters { path: PathBuf },
}

impl crate::failure::Classify for TokenError {
    fn class(&self) -> crate::failure::FailureClass {
        match self {
            TokenError::Read { .. } => crate::failure::FailureClass::Environment,
            TokenError::TooShort { .. } | TokenError::BadCharacters { .. } => crate::failure::FailureClass::Input,
        }
    }
}

/// The token. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Reads the token: the file's text without surrounding white space.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: path.into(), source })?;
        Token::new(text.trim(), path)
    }

    fn new(text: &str, path: &Path) -> Result<Token, TokenError> {
        if text.chars().count() < MIN_LEN {
            return Err(TokenError::TooShort { path: path.into(), len: text.chars().count() });
        }
        // The characters of RFC 6750's b64token: safe in a header and a cookie.
        if !text.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c)) {
            return Err(TokenError::BadCharacters { path: path.into() });
        }
        Ok(Token(text.to_string()))
    }

    /// Whether `offered` is the token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        let mut difference = u8::from(a.len() != b.len());
        for (index, byte) in a.iter().enumerate() {
            difference |= byte ^ b.get(index).copied().unwrap_or(0);
        }
        difference == 0
    }

    /// Whether a request with these headers presents the token.
    pub fn presented_in(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(bearer_credentials)
            .any(|offered| self.matches(offered));
        bearer
            || headers.get_all(COOKIE).iter().filter_map(|value| value.to_str().ok()).any(|cookies| {
                cookies
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .any(|(name, value)| name == COOKIE_NAME && self.matches(value))
            })
    }

    /// The `Set-Cookie` value that makes a browser present the token.
    pub fn cookie(&self) -> String {
        format!("{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict", self.0)
    }
}

/// The credentials of an `Authorization: Bearer ...` value. The scheme is
/// case-insensitive (RFC 7235 section 2.1), one or more spaces follow it.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn token() -> Token {
        Token::new("0123456789abcdef-TOKEN", Path::new("t")).unwrap()
    }

    #[test]
    fn a_token_is_accepted_as_bearer_or_cookie_only_when_equal() {
        let token = token();
        let mut headers = HeaderMap::new();
        assert!(!token.presented_in(&headers));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef-TOKEN"));
        assert!(token.presented_in(&headers));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef-TOKE"));
        assert!(!token.presented_in(&headers));
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; flashline_token=0123456789abcdef-TOKEN"));
        assert!(token.presented_in(&headers));
        headers.insert(COOKIE, HeaderValue::from_static("flashline_token=0123456789abcdef-TOKENX"));
        assert!(!token.presented_in(&headers));
        assert!(!token.matches(""));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let token = token();
        for value in
            ["bearer 0123456789abcdef-TOKEN", "BEARER  0123456789abcdef-TOKEN", "BeArEr 0123456789abcdef-TOKEN"]
        {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert!(token.presented_in(&headers), "{value}");
        }
        for value in ["Basic 0123456789abcdef-TOKEN", "Bearer0123456789abcdef-TOKEN", "0123456789abcdef-TOKEN"] {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert!(!token.presented_in(&headers), "{value}");
        }
    }

    #[test]
    fn short_or_unsendable_tokens_are_refused_and_never_shown() {
        assert!(matches!(Token::new("short", Path::new("t")), Err(TokenError::TooShort { len: 5, .. })));
        assert!(matches!(
            Token::new("0123456789abcdef\r\nX-Evil: 1", Path::new("t")),
            Err(TokenError::BadCharacters { .. })
        ));
        assert_eq!(format!("{:?}", token()), "Token(***)");
    }
}
