//! Which NET+OS release a simulated device runs: it decides the console's
//! wording, the factory root password and the version its banners and FTP
//! greeting print. One value shared by the console (`netos`) and the FTP
//! server (`netos_ftp`), so a simulated unit is one release throughout.

use std::fmt;
use std::str::FromStr;

/// A NET+OS release, as `--firmware 6|7.0|7.4` names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Firmware {
    /// NET+OS 6.x: root password `Netsilicon`.
    Netos6,
    /// NET+OS 7.0: the Programmer's Guide wording; root password `password`.
    Netos70,
    /// NET+OS 7.4 (the later wording; the release on shipped Connect ME 9210
    /// units): root password `password`.
    #[default]
    Netos74,
}

impl Firmware {
    /// Every release, for help texts and tests that cover each.
    pub const ALL: [Firmware; 3] = [Firmware::Netos6, Firmware::Netos70, Firmware::Netos74];

    /// The factory root password (console and FTP).
    pub fn factory_password(self) -> &'static str {
        match self {
            Firmware::Netos6 => "Netsilicon",
            Firmware::Netos70 | Firmware::Netos74 => "password",
        }
    }

    /// The version the banner and the FTP greeting print. 7.4.2 is confirmed
    /// (a real FTP session and banner); the 6.x and 7.0 point releases are
    /// not, so these are plausible stand-ins.
    pub fn version(self) -> &'static str {
        match self {
            Firmware::Netos6 => "6.3",
            Firmware::Netos70 => "7.0",
            Firmware::Netos74 => "7.4.2",
        }
    }

    /// The version the console's boot banner prints. The 7.4 banner is
    /// confirmed as `NET+OS Version 7.4` (a real connectme9210 boot); the
    /// others are stand-ins like [`Firmware::version`].
    pub fn banner_version(self) -> &'static str {
        match self {
            Firmware::Netos74 => "7.4",
            other => other.version(),
        }
    }

    /// The console dialog uses the NET+OS 7.x Programmer's Guide wording
    /// (`(Y/N)?`, `Should this target obtain IP settings from the
    /// network?`, `serial number [`); otherwise the later 7.x wording.
    pub fn guide_wording(self) -> bool {
        self != Firmware::Netos74
    }

    /// The name `--firmware` takes.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Netos6 => "6",
            Firmware::Netos70 => "7.0",
            Firmware::Netos74 => "7.4",
        }
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Firmware {
    type Err = String;

    fn from_str(text: &str) -> Result<Firmware, String> {
        Firmware::ALL
            .into_iter()
            .find(|f| f.name() == text.trim())
            .ok_or_else(|| format!("unknown firmware `{text}`; one of: 6, 7.0, 7.4"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_passwords_follow_the_release() {
        for firmware in Firmware::ALL {
            assert_eq!(firmware.name().parse::<Firmware>(), Ok(firmware));
        }
        assert_eq!(Firmware::Netos6.factory_password(), "Netsilicon");
        assert_eq!(Firmware::Netos74.factory_password(), "password");
        assert!("7.5".parse::<Firmware>().is_err());
    }
}
