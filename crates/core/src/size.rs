//! Byte sizes as users write them: `1024`, `10MiB`, `2 GiB`, `5GB`.

use crate::Error;

/// 2 GiB: every volume's cap unless its tenant has another default.
pub const DEFAULT_VOLUME_CAP: u64 = 2 * 1024 * 1024 * 1024;

/// Parses a byte count or a number with a binary (`KiB`…`TiB`) or decimal (`KB`…`TB`) unit.
pub fn parse_size(input: &str) -> Result<u64, Error> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || {
        Error::invalid_argument(format!(
            "invalid size {input:?}: expected a byte count or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB"
        ))
    };
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::invalid_argument(format!("size {input:?} is too large")))
}

/// Formats bytes for humans with binary units (`1.5 GiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("2 GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("1TB").unwrap(), 1_000_000_000_000);
        for bad in [
            "",
            "GiB",
            "-1",
            "1.5GiB",
            "10 parsecs",
            "99999999999999999999",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("99999999TiB").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(3 << 30), "3.0 GiB");
    }
}
