//! The OCI bundle of a gVisor sandbox: `config.json` written by us (serde_json), and the
//! bundle's directories (`layer`, `merged`, `vols/<i>`, `attach`: mount points inside the
//! launcher's private mount namespace only).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cgroup::CFS_PERIOD_US;
use crate::error::{Result, SandboxError};
use crate::spec::Limits;

/// Capabilities of the sandbox's processes: a container runtime's usual set, without
/// CAP_SYS_ADMIN (so nothing inside can mount, unmount or remount).
const CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The attach roots inside the sandbox, both the bundle's `attach` dir (a small tmpfs of the
/// launcher): read-write and read-only. A runtime-attached volume is mounted on the host side
/// at `<root>/<name>` in the gofer's mount namespace (the gofer serves it like every bind)
/// and bound from there onto its target inside. This runsc cannot remount inside and a bind
/// takes the flags of its source, so a read-only attach is bound from the read-only root.
pub(crate) const ATTACH_ROOTS: [(&str, &str); 2] = [
    ("rw", "/.nullspace/attach"),
    ("ro", "/.nullspace/attach-ro"),
];

/// Host tasks (sentry threads, ptrace stubs) per process inside (measured: about 2.5 with ten
/// sleeping processes; a fork bomb held at 64 processes peaked at 979-1,411, and with 16 per
/// process it sometimes hit the bound). Only a backstop: a
/// clone the sentry needs and cannot have brings the whole sandbox down, so RLIMIT_NPROC
/// inside must bite first.
const HOST_TASKS_PER_PROCESS: u64 = 64;
/// Host tasks of an idle sandbox and its gofer (measured: about 25).
const SENTRY_TASKS: u64 = 128;

/// Host memory of the sentry and gofer beyond what the sandbox's processes use.
const SENTRY_MEMORY: u64 = 32 << 20;

/// One volume bind of the bundle: the staging dir `vols/<index>` → `target` inside.
pub(crate) struct Bind {
    pub index: usize,
    pub target: String,
    pub read_only: bool,
}

/// What `config.json` says.
pub(crate) struct Config<'a> {
    pub hostname: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub limits: &'a Limits,
    pub pids_max: Option<u64>,
    pub cgroups_path: String,
    pub binds: Vec<Bind>,
}

/// The bundle directory of the sandbox in `dir`.
pub(crate) fn bundle_dir(dir: &Path) -> PathBuf {
    dir.join("bundle")
}

/// The JSON of `config.json`.
pub(crate) fn config_json(bundle: &Path, c: &Config<'_>) -> Value {
    let env: Vec<String> = crate::spec::exec_env(c.env, &BTreeMap::new())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/usr", "type": "bind", "source": "/usr",
               "options": ["rbind", "ro", "nosuid", "nodev"]}),
    ];
    for b in &c.binds {
        let src = bundle.join("vols").join(b.index.to_string());
        mounts.push(json!({
            "destination": b.target,
            "type": "bind",
            "source": src.to_string_lossy(),
            "options": ["rbind", if b.read_only { "ro" } else { "rw" }, "nosuid", "nodev"],
        }));
    }
    for (mode, dest) in ATTACH_ROOTS {
        mounts.push(json!({
            "destination": dest,
            "type": "bind",
            "source": bundle.join("attach").to_string_lossy(),
            "options": ["rbind", mode, "nosuid", "nodev"],
        }));
    }
    let pids = match c.pids_max {
        Some(cap) => u64::from(c.limits.pids).min(cap),
        None => u64::from(c.limits.pids),
    };
    // The sandbox's processes are tasks of gVisor's kernel, which holds them to
    // RLIMIT_NPROC (a fork past it is EAGAIN inside); on the host each takes a few threads
    // of the sentry or its ptrace stubs, beside the sentry's own.
    let host_pids = pids * HOST_TASKS_PER_PROCESS + SENTRY_TASKS;
    let quota = crate::cgroup::cfs_quota_us(c.limits.cpu_millicores);
    json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            // pid 1 of the sandbox: sleeps (gVisor's kernel reaps orphans of exec'd commands).
            "args": ["/bin/sleep", "infinity"],
            "env": env,
            "cwd": "/",
            "capabilities": {
                "bounding": CAPS, "effective": CAPS, "permitted": CAPS, "inheritable": [],
            },
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NPROC", "hard": pids, "soft": pids}],
        },
        "root": {"path": bundle.join("merged").to_string_lossy(), "readonly": false},
        "hostname": c.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "network"},
            ],
            "resources": {
                // The sentry's own memory beside the sandbox's (idle: about 15 MiB).
                "memory": {"limit": c.limits.memory_bytes + SENTRY_MEMORY,
                           "swap": c.limits.memory_bytes + SENTRY_MEMORY},
                "cpu": {"quota": quota, "period": CFS_PERIOD_US},
                "pids": {"limit": host_pids},
            },
            "cgroupsPath": c.cgroups_path,
        },
    })
}

/// Makes the bundle's directories and writes `config.json` (atomically).
pub(crate) fn write(dir: &Path, c: &Config<'_>) -> Result<PathBuf> {
    let bundle = bundle_dir(dir);
    let e = |op: &'static str, p: &Path| {
        let d = p.display().to_string();
        move |err| SandboxError::sys(op, d, err)
    };
    for sub in ["layer", "merged", "attach"] {
        let p = bundle.join(sub);
        fs::create_dir_all(&p).map_err(e("mkdir", &p))?;
    }
    for b in &c.binds {
        let p = bundle.join("vols").join(b.index.to_string());
        fs::create_dir_all(&p).map_err(e("mkdir", &p))?;
    }
    let text = serde_json::to_vec_pretty(&config_json(&bundle, c)).expect("config serialises");
    let tmp = bundle.join(".config.json.tmp");
    let dst = bundle.join("config.json");
    fs::write(&tmp, text).map_err(e("write", &tmp))?;
    fs::rename(&tmp, &dst).map_err(e("rename", &dst))?;
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_limits_binds_and_no_sys_admin() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let limits = Limits::default();
        let c = Config {
            hostname: "h",
            env: &env,
            limits: &limits,
            pids_max: Some(100),
            cgroups_path: "/nullspace/x".into(),
            binds: vec![Bind {
                index: 0,
                target: "/data".into(),
                read_only: true,
            }],
        };
        let v = config_json(Path::new("/s/x/bundle"), &c);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 100 * 64 + 128);
        assert_eq!(v["process"]["rlimits"][0]["hard"], 100);
        assert_eq!(
            v["linux"]["resources"]["memory"]["limit"],
            (1u64 << 30) + (32 << 20)
        );
        assert_eq!(v["linux"]["cgroupsPath"], "/nullspace/x");
        assert_eq!(v["root"]["path"], "/s/x/bundle/merged");
        let m = &v["mounts"][2];
        assert_eq!(m["destination"], "/data");
        assert_eq!(m["source"], "/s/x/bundle/vols/0");
        assert_eq!(m["options"][1], "ro");
        assert_eq!(v["mounts"][3]["destination"], "/.nullspace/attach");
        assert_eq!(v["mounts"][3]["source"], "/s/x/bundle/attach");
        assert_eq!(v["mounts"][4]["source"], "/s/x/bundle/attach");
        assert_eq!(v["mounts"][4]["destination"], "/.nullspace/attach-ro");
        assert_eq!(v["mounts"][4]["options"][1], "ro");
        let caps = v["process"]["capabilities"]["bounding"].to_string();
        assert!(!caps.contains("SYS_ADMIN"), "{caps}");
        let env = v["process"]["env"].to_string();
        assert!(env.contains("A=1") && env.contains("PATH="), "{env}");
    }
}
