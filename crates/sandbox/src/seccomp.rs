//! The seccomp filter of every sandbox process: its pid 1 and every command `exec` starts
//! (and so everything those start: filters are inherited across fork, clone and execve and
//! can never be removed).
//!
//! **A deny list, modelled on Docker's default profile.** Docker allows some 350 system calls
//! and denies the rest; we allow everything and deny, with `EPERM`, what reaches kernel
//! surface no sandbox needs: new namespaces (user namespaces above all: inside one, an
//! unprivileged process gains capabilities over fresh mount, network and keyring state, the
//! door of most container escapes), every mount call (the sandbox's mounts are made before the
//! filter, by the runtime), keyrings, BPF, perf events, kernel modules and kexec, swap, reboot,
//! the clock, quotas, the kernel log, accounting, handle-based opens (`open_by_handle_at`
//! walks around the mount tree), userfaultfd (a tool of kernel exploits), I/O ports and
//! personalities other than the everyday ones. A deny list keeps working when the kernel
//! adds system calls that programs start to use (an allow list breaks new glibc first), and
//! the calls that matter are the ones the capability drop already refuses; the filter makes
//! that refusal independent of capabilities and of the user namespace's ownership.
//!
//! `ptrace` stays allowed (as Docker does since kernel 4.8): debuggers and `strace` are
//! everyday developer tools, and a sandbox process can only trace its own sandbox's processes.
//!
//! **What seccompiler cannot say** is said by a short prelude of our own in front of its
//! program: system calls with the x32 bit (`nr >= 0x4000_0000`, the same arch value as
//! x86_64, so an arch check alone misses them) are refused, and `clone3` and `io_uring_*`
//! answer `ENOSYS` (clone3 passes its flags in memory that a filter cannot read, so it cannot
//! be checked for `CLONE_NEWUSER`; libc falls back to `clone`, which can. io_uring performs
//! opens and other calls that no filter sees, which is why Docker refuses it too). Those
//! numbers are the same on x86_64 and aarch64 (the unified table of new system calls).
//! Calls of a foreign architecture (32-bit x86 from an x86_64 process) kill the process.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::{Result, SandboxError};

/// `clone3(2)`, `io_uring_setup(2)` and `io_uring_register(2)`: the unified numbers.
const NR_CLONE3: u32 = 435;
const NR_IO_URING_FIRST: u32 = 425;
const NR_IO_URING_LAST: u32 = 427;
/// The x32 ABI marks its system call numbers with this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Every namespace flag of `clone(2)` and `unshare(2)`.
const NAMESPACE_FLAGS: [u64; 8] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// `personality(2)` values that stay allowed: Linux, the query, and the ones Docker allows
/// (`UNAME26`, `PER_LINUX32` and both).
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Refused outright.
fn denied() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_setns,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_open_by_handle_at,
        libc::SYS_userfaultfd,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_syslog,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_lookup_dcookie,
        libc::SYS_fanotify_init,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        libc::SYS_iopl,
        libc::SYS_ioperm,
        libc::SYS_uselib,
        libc::SYS__sysctl,
        libc::SYS_nfsservctl,
    ]);
    v
}

fn masked(flag: u64) -> Result<SeccompRule> {
    let c = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::MaskedEq(flag),
        flag,
    )
    .map_err(bad)?;
    SeccompRule::new(vec![c]).map_err(bad)
}

fn bad(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Unavailable(format!("the seccomp filter does not build: {e}"))
}

/// The filter's BPF program, prelude included; built once per runtime, installed by
/// `install` in each sandbox process.
pub(crate) fn program() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in denied() {
        rules.insert(nr, Vec::new());
    }
    let ns: Vec<SeccompRule> = NAMESPACE_FLAGS
        .iter()
        .map(|&f| masked(f))
        .collect::<Result<_>>()?;
    rules.insert(libc::SYS_clone, ns.clone());
    rules.insert(libc::SYS_unshare, ns);
    let not_allowed: Vec<SeccompCondition> = PERSONALITIES
        .iter()
        .map(|&p| SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, p))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    rules.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(not_allowed).map_err(bad)?],
    );
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(bad)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(bad)?;
    let body: BpfProgram = filter.try_into().map_err(bad)?;
    let mut prog = prelude();
    prog.extend(body);
    Ok(prog)
}

fn stmt(code: u32, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// x32 → EPERM; clone3 and io_uring → ENOSYS; everything else falls through to seccompiler's
/// program (which starts with its own architecture check). Offsets count from the next
/// instruction.
fn prelude() -> Vec<sock_filter> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    vec![
        // 0: A = seccomp_data.nr
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        // 1: x32 → 5
        jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 3, 0),
        // 2: clone3 → 6
        jump(BPF_JMP | BPF_JEQ | BPF_K, NR_CLONE3, 3, 0),
        // 3: below io_uring → 7
        jump(BPF_JMP | BPF_JGE | BPF_K, NR_IO_URING_FIRST, 0, 3),
        // 4: above io_uring → 7, else → 6
        jump(BPF_JMP | BPF_JGT | BPF_K, NR_IO_URING_LAST, 2, 1),
        // 5:
        stmt(BPF_RET | BPF_K, errno(libc::EPERM)),
        // 6:
        stmt(BPF_RET | BPF_K, errno(libc::ENOSYS)),
        // 7: seccompiler's program follows.
    ]
}

/// Installs `prog` on the calling thread. Only raw system calls: callable in the child of a
/// multi-threaded process. The caller has set no_new_privs (or the kernel refuses).
pub(crate) fn install(prog: &[sock_filter]) -> std::result::Result<(), i32> {
    seccompiler::apply_filter(prog).map_err(|e| match e {
        seccompiler::Error::Seccomp(io) | seccompiler::Error::Prctl(io) => {
            io.raw_os_error().unwrap_or(libc::EINVAL)
        }
        _ => libc::EINVAL,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_builds_with_its_prelude_first() {
        let p = program().unwrap();
        assert_eq!(p[..7], prelude()[..]);
        // seccompiler's architecture check comes right after: load of seccomp_data.arch.
        assert_eq!(p[7].k, 4);
        assert!(
            p.len() < 4096,
            "a BPF program holds at most 4096 instructions"
        );
    }

    /// Runs the prelude for system call `nr`: `Some(return value)`, or `None` when it falls
    /// through to seccompiler's program.
    fn run_prelude(nr: u32) -> Option<u32> {
        let p = prelude();
        let (mut pc, mut a) = (0usize, 0u32);
        while pc < p.len() {
            let ins = &p[pc];
            let code = ins.code as u32;
            pc += 1;
            match code & 0x07 {
                libc::BPF_LD => a = nr,
                libc::BPF_RET => return Some(ins.k),
                libc::BPF_JMP => {
                    let taken = match code & 0xf0 {
                        libc::BPF_JEQ => a == ins.k,
                        libc::BPF_JGE => a >= ins.k,
                        libc::BPF_JGT => a > ins.k,
                        op => panic!("jump {op:#x} not simulated"),
                    };
                    pc += if taken { ins.jt } else { ins.jf } as usize;
                }
                c => panic!("class {c:#x} not simulated"),
            }
        }
        assert_eq!(pc, p.len(), "fell through past the prelude's end");
        None
    }

    #[test]
    fn the_prelude_refuses_x32_and_sends_clone3_and_io_uring_to_enosys() {
        let errno = |e: i32| Some(libc::SECCOMP_RET_ERRNO | e as u32);
        for nr in [NR_CLONE3, 425, 426, 427] {
            assert_eq!(run_prelude(nr), errno(libc::ENOSYS), "{nr}");
        }
        for nr in [X32_SYSCALL_BIT, X32_SYSCALL_BIT + 39, u32::MAX] {
            assert_eq!(run_prelude(nr), errno(libc::EPERM), "{nr:#x}");
        }
        for nr in [0, 39, 56, 424, 428, 434, 436, 0x3fff_ffff] {
            assert_eq!(run_prelude(nr), None, "{nr} goes on to the deny list");
        }
    }
}
