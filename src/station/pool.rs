//! An address pool as written in a station file: `FIRST-LAST` or a CIDR
//! block. Pure; which address goes to which unit is decided in the database
//! (`store::Store::lease`), so that stations sharing a pool never collide.

use std::net::Ipv4Addr;

/// The addresses of a pool, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPool {
    /// As written: the pool's name in the database.
    pub text: String,
    pub addresses: Vec<Ipv4Addr>,
}

/// More addresses than a station could ever use: a typo like `/8` is refused.
const MAX_ADDRESSES: u32 = 65_536;

impl AddressPool {
    pub fn parse(text: &str) -> Result<AddressPool, String> {
        let text = text.trim();
        let (first, last) = if let Some((network, bits)) = text.split_once('/') {
            let network: Ipv4Addr =
                network.trim().parse().map_err(|_| format!("`{network}` is not an IPv4 address"))?;
            let bits: u32 =
                bits.trim().parse().ok().filter(|b| *b <= 32).ok_or(format!("`/{bits}` is not a prefix length"))?;
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            let base = u32::from(network) & mask;
            if base != u32::from(network) {
                return Err(format!("`{text}` has host bits set: the block starts at {}", Ipv4Addr::from(base)));
            }
            let size = 1u64 << (32 - bits);
            if size <= 2 {
                (base, base + size as u32 - 1)
            } else {
                // Leave out the network and broadcast addresses.
                (base + 1, base + size as u32 - 2)
            }
        } else if let Some((first, last)) = text.split_once('-') {
            let first: Ipv4Addr =
                first.trim().parse().map_err(|_| format!("`{}` is not an IPv4 address", first.trim()))?;
            let last: Ipv4Addr =
                last.trim().parse().map_err(|_| format!("`{}` is not an IPv4 address", last.trim()))?;
            if u32::from(last) < u32::from(first) {
                return Err(format!("the range `{text}` ends before it starts"));
            }
            (u32::from(first), u32::from(last))
        } else {
            return Err(format!("`{text}` is neither FIRST-LAST nor a CIDR block such as 192.168.1.96/27"));
        };
        if last - first >= MAX_ADDRESSES {
            return Err(format!("`{text}` holds {} addresses; a pool holds at most {MAX_ADDRESSES}", last - first + 1));
        }
        Ok(AddressPool { text: text.to_string(), addresses: (first..=last).map(Ipv4Addr::from).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_blocks() {
        let pool = AddressPool::parse("198.18.0.10-198.18.0.12").unwrap();
        assert_eq!(
            pool.addresses,
            vec![Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11), Ipv4Addr::new(198, 18, 0, 12)]
        );
        let block = AddressPool::parse("198.18.1.0/29").unwrap();
        assert_eq!(block.addresses.first(), Some(&Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(block.addresses.last(), Some(&Ipv4Addr::new(198, 18, 1, 6)));
        assert_eq!(AddressPool::parse("198.18.1.7/32").unwrap().addresses.len(), 1);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, says) in [
            ("198.18.0.12-198.18.0.10", "ends before"),
            ("198.18.1.1/29", "host bits"),
            ("10.0.0.0/8", "at most"),
            ("198.18.0.300-198.18.0.301", "not an IPv4"),
            ("lots", "neither"),
            ("198.18.0.0/33", "prefix length"),
        ] {
            let error = AddressPool::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
