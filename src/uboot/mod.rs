//! The U-Boot family: the boot loader of most embedded Linux boards. Its
//! console is a command prompt (`=> ` on most builds): a unit is driven by
//! `console_commands`, and what it says is read from what the commands
//! print, not from a banner dialog (docs/uboot.md).
//!
//! - the prompt and the error lines a failed command prints ([`PROMPT`],
//!   [`ERROR_SHAPES`]), the defaults of a `console_commands` step;
//! - [`identity`]: where the console names the unit (`ethaddr=`, `serial#=`).
//!
//! U-Boot answers no ADDP, has no FTP server and no image header flashline
//! checks before sending: its own `crc32` checks what arrived. Pure: no I/O.

pub mod identity;

/// The prompt of U-Boot's default build (boards may set another).
pub const PROMPT: &str = "=> ";

/// Regexes of the lines U-Boot prints when a command fails, seen on Debian's
/// QEMU build and in its sources: an unknown command, an `## Error` line
/// (`printenv` of a variable that is not set), `Failed (1)` (`saveenv`),
/// TFTP's errors, and image checks.
pub const ERROR_SHAPES: [&str; 8] = [
    r"^Unknown command",
    r"^## Error",
    r"Failed \(\d+\)",
    r"TFTP error",
    r"Retry count exceeded",
    r"^ERROR",
    r"Wrong Image Format",
    r"Bad Magic Number",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines from Debian's u-boot-qemu build (2023.01) under QEMU.
    #[test]
    fn the_error_shapes_match_what_u_boot_printed_and_not_its_good_answers() {
        let shapes: Vec<regex::Regex> = ERROR_SHAPES.iter().map(|s| regex::Regex::new(s).unwrap()).collect();
        let failed = |line: &str| shapes.iter().any(|s| s.is_match(line));
        for line in ["Unknown command 'foo' - try 'help'", "## Error: \"ethaddr\" not defined", "Failed (1)"] {
            assert!(failed(line), "{line}");
        }
        for line in [
            "ethaddr=52:54:00:12:34:56",
            "crc32 for 40000000 ... 400000ff ==> 28e2da32",
            "## Total Size      = 0x00002328 = 9000 Bytes",
            "Saving Environment to Flash... Un-Protected 2 sectors",
        ] {
            assert!(!failed(line), "{line}");
        }
    }
}
