//! The NET+OS factory FTP logins: what a unit that nobody configured
//! accepts. Public, printed on the vendor's pages (docs/netos.md). A
//! profile's own `credentials:` come first; these are the fallback of
//! `flashline ftp put` without `--user`.

use crate::net::service::Credential;

/// The factory logins, in the order to try them: root/Netsilicon (6.x
/// firmware), then root/password (7.x).
pub fn factory_logins() -> Vec<Credential> {
    vec![
        Credential { user: "root".into(), password: "Netsilicon".into() },
        Credential { user: "root".into(), password: "password".into() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_6x_login_comes_before_the_7x_one() {
        let logins: Vec<_> = factory_logins().into_iter().map(|c| format!("{}/{}", c.user, c.password)).collect();
        assert_eq!(logins, ["root/Netsilicon", "root/password"]);
    }
}
