//! Resource limits: what a sandbox asks for (or the server's defaults) checked against its
//! tenant's limits (the tenant's own, else defaults derived from this host at start).
//!
//! Per-sandbox maxima (`max_cpu`, `max_sandbox_memory`) are checked here, before anything is
//! made (`invalid_argument` naming the field). Totals (`max_sandboxes`, `max_total_memory`,
//! `max_total_disk`, `max_volumes`) are checked here too, to refuse early, and again by the
//! store in the transaction that inserts the record, with the tenant's row locked — that
//! second check is the one that holds under concurrency, also across servers on one
//! PostgreSQL (`resource_exhausted` naming the limit).

use std::path::Path;

use nullspace_core::limits::{cores, cpu_value, size_value, MIN_SANDBOX_DISK, MIN_SANDBOX_MEMORY};
use nullspace_core::wire::{self, SetTenantLimits};
use nullspace_core::{format_size, Error, TenantName};
use nullspace_sandbox::Limits;
use nullspace_state::{Principal, SandboxLimits, StateStore, TenantLimits, TenantUsage};

/// Default `max_volumes` of a tenant.
pub const DEFAULT_MAX_VOLUMES: u64 = 1000;
/// Default `max_keys` of a tenant: live keys and volume tokens together.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;
/// Upper bound of the default `max_sandboxes` (the host's pids may allow more).
pub const DEFAULT_MAX_SANDBOXES: u64 = 256;

/// The tenant defaults for this host, given the server's per-sandbox defaults:
/// - `max_sandbox_memory` and `max_total_memory`: half the host's RAM;
/// - `max_cpu`: every core of the host;
/// - `max_total_disk`: half the size of the file system holding the data dir;
/// - `max_sandboxes`: as many sandboxes as half the host's pid space holds at the per-sandbox
///   pids limit, at most 256 (so one tenant's processes stay under half the host's pids);
/// - `max_volumes`: 1,000;
/// - `max_keys`: 10,000 live keys and volume tokens.
pub fn host_defaults(data_dir: &Path, sandbox: &Limits) -> TenantLimits {
    let ram = host_memory().unwrap_or(8 << 30);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let disk = rustix::fs::statvfs(data_dir)
        .map(|s| s.f_blocks.saturating_mul(s.f_frsize))
        .unwrap_or(64 << 30);
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(32_768);
    let sandboxes = (pid_max / 2 / u64::from(sandbox.pids.max(1))).clamp(1, DEFAULT_MAX_SANDBOXES);
    TenantLimits {
        max_sandboxes: Some(sandboxes),
        max_volumes: Some(DEFAULT_MAX_VOLUMES),
        max_cpu_millicores: Some(cpus * 1000),
        max_sandbox_memory: Some((ram / 2).max(MIN_SANDBOX_MEMORY)),
        max_total_memory: Some((ram / 2).max(MIN_SANDBOX_MEMORY)),
        max_total_disk: Some((disk / 2).max(MIN_SANDBOX_DISK)),
        max_keys: Some(DEFAULT_MAX_KEYS),
    }
}

/// `MemTotal` of /proc/meminfo in bytes.
fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A tenant's limits in force and usage, for the caller's own tenant.
pub(crate) async fn in_force(
    store: &dyn StateStore,
    caller: &Principal,
    defaults: &TenantLimits,
) -> Result<(TenantLimits, TenantUsage), Error> {
    let name = TenantName::parse(&caller.tenant_name)?;
    let (_, own, usage) = store.tenant_limits(&name).await?;
    Ok((own.or(*defaults), usage))
}

/// The limits of a new sandbox: what was asked, else the server's defaults, each within the
/// bounds and the tenant's per-sandbox maxima (`invalid_argument` naming the field).
pub(crate) fn choose(
    req: &wire::CreateSandbox,
    server: &Limits,
    tenant: &TenantLimits,
) -> Result<Limits, Error> {
    let mut out = *server;
    if let Some(v) = &req.cpu {
        out.cpu_millicores = cpu_value("cpu", v)?;
    }
    if let Some(v) = &req.memory {
        out.memory_bytes = size_value("memory", v)?;
    }
    if let Some(v) = &req.disk {
        out.disk_bytes = size_value("disk", v)?;
    }
    let given = |asked: bool| if asked { "" } else { " (the server's default)" };
    if out.memory_bytes < MIN_SANDBOX_MEMORY {
        return Err(Error::invalid_argument(format!(
            "memory {}{} is below the minimum of 16 MiB",
            format_size(out.memory_bytes),
            given(req.memory.is_some())
        )));
    }
    if out.disk_bytes < MIN_SANDBOX_DISK {
        return Err(Error::invalid_argument(format!(
            "disk {}{} is below the minimum of 16 MiB",
            format_size(out.disk_bytes),
            given(req.disk.is_some())
        )));
    }
    if let Some(max) = tenant.max_cpu_millicores {
        if u64::from(out.cpu_millicores) > max {
            return Err(Error::invalid_argument(format!(
                "cpu {}{} is above the tenant's max_cpu of {} core(s)",
                cores(out.cpu_millicores),
                given(req.cpu.is_some()),
                max as f64 / 1000.0
            )));
        }
    }
    let sizes = [
        (
            "memory",
            out.memory_bytes,
            req.memory.is_some(),
            "max_sandbox_memory",
            tenant.max_sandbox_memory,
        ),
        (
            "memory",
            out.memory_bytes,
            req.memory.is_some(),
            "max_total_memory",
            tenant.max_total_memory,
        ),
        (
            "disk",
            out.disk_bytes,
            req.disk.is_some(),
            "max_total_disk",
            tenant.max_total_disk,
        ),
    ];
    for (field, value, asked, limit, max) in sizes {
        if let Some(max) = max.filter(|&max| value > max) {
            return Err(Error::invalid_argument(format!(
                "{field} {}{} is above the tenant's {limit} of {}",
                format_size(value),
                given(asked),
                format_size(max)
            )));
        }
    }
    Ok(out)
}

/// The record's form of runtime limits.
pub(crate) fn recorded(l: &Limits) -> SandboxLimits {
    SandboxLimits {
        cpu_millicores: l.cpu_millicores,
        memory_bytes: l.memory_bytes,
        disk_bytes: l.disk_bytes,
        pids: l.pids,
    }
}

/// Refuses early (`resource_exhausted`) when one more sandbox with `adding` would pass a
/// total; the store checks again as it inserts.
pub(crate) fn room_for(
    limits: &TenantLimits,
    usage: &TenantUsage,
    adding: &SandboxLimits,
) -> Result<(), Error> {
    Ok(nullspace_state::check_sandbox_room(limits, usage, adding)?)
}

/// The operator's changes, parsed (`invalid_argument` naming the field).
pub(crate) fn parse_set(req: &SetTenantLimits) -> Result<TenantLimits, Error> {
    let count = |field: &str, v: Option<u64>| -> Result<Option<u64>, Error> {
        match v {
            Some(0) => Err(Error::invalid_argument(format!(
                "{field} must be at least 1"
            ))),
            Some(n) if n > i64::MAX as u64 => Err(Error::invalid_argument(format!(
                "{field} must be at most 2^63-1"
            ))),
            other => Ok(other),
        }
    };
    let size = |field: &str, v: &Option<serde_json::Value>| -> Result<Option<u64>, Error> {
        v.as_ref().map(|v| size_value(field, v)).transpose()
    };
    let out = TenantLimits {
        max_sandboxes: count("max_sandboxes", req.max_sandboxes)?,
        max_volumes: count("max_volumes", req.max_volumes)?,
        max_cpu_millicores: req
            .max_cpu
            .as_ref()
            .map(|v| cpu_value("max_cpu", v).map(u64::from))
            .transpose()?,
        max_sandbox_memory: size("max_sandbox_memory", &req.max_sandbox_memory)?,
        max_total_memory: size("max_total_memory", &req.max_total_memory)?,
        max_total_disk: size("max_total_disk", &req.max_total_disk)?,
        max_keys: count("max_keys", req.max_keys)?,
    };
    if out == TenantLimits::default() {
        return Err(Error::invalid_argument(
            "give at least one limit to set (max_sandboxes, max_volumes, max_cpu, \
             max_sandbox_memory, max_total_memory, max_total_disk, max_keys)",
        ));
    }
    Ok(out)
}

/// The wire form of a tenant's limits in force.
pub(crate) fn shown(
    tenant: &str,
    own: &TenantLimits,
    defaults: &TenantLimits,
    usage: &TenantUsage,
) -> wire::TenantLimits {
    let l = own.or(*defaults);
    let unlimited = i64::MAX as u64;
    wire::TenantLimits {
        tenant: tenant.to_owned(),
        max_sandboxes: l.max_sandboxes.unwrap_or(unlimited),
        max_volumes: l.max_volumes.unwrap_or(unlimited),
        max_cpu: l.max_cpu_millicores.unwrap_or(unlimited) as f64 / 1000.0,
        max_sandbox_memory: l.max_sandbox_memory.unwrap_or(unlimited),
        max_total_memory: l.max_total_memory.unwrap_or(unlimited),
        max_total_disk: l.max_total_disk.unwrap_or(unlimited),
        max_keys: l.max_keys.unwrap_or(unlimited),
        custom: own.set_names(),
        usage: wire::TenantUsage {
            sandboxes: usage.sandboxes,
            volumes: usage.volumes,
            memory_bytes: usage.memory_bytes,
            disk_bytes: usage.disk_bytes,
            keys: usage.keys,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults keep one tenant within half the host: its sandboxes' pids under half the
    /// pid space, its memory under half the RAM, its layers under half the data file system.
    #[test]
    fn host_defaults_keep_one_tenant_within_half_the_host() {
        let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let dir = std::env::temp_dir();
        for pids in [16, 1024, 4096, 1 << 20] {
            let per = Limits {
                pids,
                ..Limits::default()
            };
            let t = host_defaults(&dir, &per);
            let n = t.max_sandboxes.unwrap();
            assert!((1..=DEFAULT_MAX_SANDBOXES).contains(&n));
            assert!(
                n == 1 || n * u64::from(pids) <= pid_max / 2,
                "{n} × {pids} pids"
            );
            let ram = host_memory().unwrap();
            assert!(t.max_total_memory.unwrap() <= ram / 2);
            assert!(t.max_sandbox_memory.unwrap() <= t.max_total_memory.unwrap());
            let fs = rustix::fs::statvfs(&dir).unwrap();
            assert!(t.max_total_disk.unwrap() <= fs.f_blocks * fs.f_frsize / 2);
        }
    }
}
