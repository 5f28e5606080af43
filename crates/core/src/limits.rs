//! Sandbox resource requests as users write them (`cpu: 0.5`, `memory: "512MiB"` or `536870912`)
//! and the bounds every such request must meet. One parser for the API, CLI and admin verbs.

use serde_json::Value;

use crate::{parse_size, Error};

/// The smallest memory limit a sandbox may have: 16 MiB (below it a shell barely starts).
pub const MIN_SANDBOX_MEMORY: u64 = 16 << 20;
/// The smallest writable layer a sandbox may have: 16 MiB.
pub const MIN_SANDBOX_DISK: u64 = 16 << 20;
/// The smallest CPU quota: 0.01 core (10 millicores).
pub const MIN_SANDBOX_MILLICORES: u32 = 10;
/// The largest CPU quota anyone may ask for: 1,024 cores.
pub const MAX_SANDBOX_MILLICORES: u32 = 1_024_000;
/// The largest size any limit may have: 2^63-1 bytes (what the store can hold).
pub const MAX_LIMIT_BYTES: u64 = i64::MAX as u64;

/// A size given as a JSON byte count or a size string (`"2GiB"`); `field` names it in errors.
/// Zero, negative, fractional and non-numeric values are `invalid_argument`.
pub fn size_value(field: &str, v: &Value) -> Result<u64, Error> {
    let n = match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            Error::invalid_argument(format!(
                "{field} must be a positive byte count or a size such as \"512MiB\", not {n}"
            ))
        })?,
        Value::String(s) => parse_size(s)
            .map_err(|e| Error::invalid_argument(format!("invalid {field}: {}", e.message)))?,
        other => {
            return Err(Error::invalid_argument(format!(
                "{field} must be a byte count or a size such as \"512MiB\", not {other}"
            )))
        }
    };
    if n == 0 || n > MAX_LIMIT_BYTES {
        return Err(Error::invalid_argument(format!(
            "{field} must be between 1 byte and 2^63-1 bytes"
        )));
    }
    Ok(n)
}

/// A number of cores (`0.5`, `2`, or the same as a string) in millicores; `field` names it in
/// errors. Must be a finite number from 0.01 to 1,024.
pub fn cpu_value(field: &str, v: &Value) -> Result<u32, Error> {
    let cores = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(cores) = cores.filter(|c| c.is_finite()) else {
        return Err(Error::invalid_argument(format!(
            "{field} must be a number of cores such as 0.5 or 2, not {v}"
        )));
    };
    let milli = (cores * 1000.0).round();
    if milli < f64::from(MIN_SANDBOX_MILLICORES) || milli > f64::from(MAX_SANDBOX_MILLICORES) {
        return Err(Error::invalid_argument(format!(
            "{field} must be between 0.01 and 1024 cores, not {v}"
        )));
    }
    Ok(milli as u32)
}

/// Parses a CPU flag (`--cpu 0.5`) in millicores.
pub fn parse_cpu(field: &str, s: &str) -> Result<u32, Error> {
    cpu_value(field, &Value::String(s.to_owned()))
}

/// Millicores as cores for the wire (`500` → `0.5`).
pub fn cores(millicores: u32) -> f64 {
    f64::from(millicores) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(size_value("memory", &json!(1024)).unwrap(), 1024);
        assert_eq!(size_value("memory", &json!("2GiB")).unwrap(), 2 << 30);
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("lots"),
            json!(true),
            json!("0"),
        ] {
            let e = size_value("memory", &bad).unwrap_err();
            assert!(e.message.contains("memory"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(cpu_value("cpu", &json!(0.5)).unwrap(), 500);
        assert_eq!(cpu_value("cpu", &json!(2)).unwrap(), 2000);
        assert_eq!(cpu_value("cpu", &json!("1.25")).unwrap(), 1250);
        for bad in [
            json!(0),
            json!(-1),
            json!("x"),
            json!(0.001),
            json!(1e9),
            json!(null),
        ] {
            let e = cpu_value("cpu", &bad).unwrap_err();
            assert!(e.message.contains("cpu"), "{bad}: {}", e.message);
        }
        assert_eq!(cores(1500), 1.5);
    }
}
