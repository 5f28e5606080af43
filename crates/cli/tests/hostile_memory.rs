//! "Memory amplification" (issue 12): replace, edit, dry runs and exec output keep the server's
//! peak memory within a stated bound, however much the answer or the rewrite would grow.
//!
//! Each test starts a fresh server, warms it up (one small call of each kind), takes its VmRSS
//! as the baseline, runs the hostile request and reads VmHWM (the peak resident set) from
//! /proc/<pid>/status. Before the fix, a 1 MiB file × a 200-byte replacement held the whole
//! 100 MiB rewrite (twice, for the plan and for the write), and an exec printing 64 MiB of NUL
//! bytes answered 384 MiB of `\u0000` escapes.

mod harness;

use base64::Engine as _;
use harness::{Api, Server};
use serde_json::{json, Value};

const VOL: &str = "mem";
const MIB: u64 = 1 << 20;
/// Peak resident set a replace, dry run or edit may add over the warmed-up baseline.
const REWRITE_BOUND: u64 = 64 * MIB;
/// Peak resident set one exec may add (the runtime keeps 8 MiB of each stream, the answer is
/// at most 8 MiB: three budgets plus the serialiser's buffer).
const EXEC_BOUND: u64 = 64 * MIB;
/// Peak resident set four concurrent execs may add.
const EXEC4_BOUND: u64 = 160 * MIB;
/// The answer's budget for stdout and stderr together, as encoded (docs/API.md).
const BUDGET: usize = 8 << 20;

/// A field of /proc/<pid>/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// The server's resident set now, and its peak since it started.
struct Mem {
    pid: u32,
    baseline: u64,
}

impl Mem {
    fn of(s: &Server) -> Mem {
        let pid = s.pid().expect("the server's pid");
        Mem {
            pid,
            baseline: proc_status(pid, "VmRSS:"),
        }
    }

    /// Asserts the peak resident set stayed within `bound` over the baseline.
    #[track_caller]
    fn assert_peak_within(&self, bound: u64, what: &str) {
        let peak = proc_status(self.pid, "VmHWM:");
        let added = peak.saturating_sub(self.baseline);
        eprintln!("{what}: peak {} KiB over the baseline", added / 1024);
        assert!(
            added <= bound,
            "{what}: peak RSS {} MiB is {} MiB over the baseline {} MiB (bound {} MiB)",
            peak / MIB,
            added / MIB,
            self.baseline / MIB,
            bound / MIB
        );
    }
}

fn replace(api: &Api, body: Value) -> Value {
    api.post_json(&format!("/v1/volumes/{VOL}/files/replace"), &body)
        .expect(200, "replace")
        .json()
}

/// 1 MiB of `x\n` lines; every `x` becomes 200 bytes (a 100 MiB result).
fn frequent() -> (Vec<u8>, Vec<u8>, String) {
    let original = b"x\n".repeat(512 << 10);
    let replacement = "R".repeat(199) + "!";
    let expected = format!("{replacement}\n").into_bytes().repeat(512 << 10);
    (original, expected, replacement)
}

#[test]
fn replace_dry_run_and_edit_of_a_1mib_file_with_a_200_byte_replacement_stay_bounded() {
    let s = Server::start();
    let api = s.api();
    api.create_volume(VOL);
    let data = s.volume_data(&api.volume_id(VOL));
    // Warm-up: one small call of each kind.
    api.write(VOL, "/warm.txt", "x\nx\n").expect(200, "write");
    replace(
        &api,
        json!({"pattern": "x", "replacement": "yy", "path": "/warm.txt"}),
    );
    api.post_json(
        &format!("/v1/volumes/{VOL}/files/edit"),
        &json!({"path": "/warm.txt", "old": "yy", "new": "z", "count": null}),
    )
    .expect(200, "edit");

    let (original, expected, replacement) = frequent();
    api.write(VOL, "/big/a.txt", original.clone())
        .expect(200, "write a");
    api.write(VOL, "/big/b.txt", original.clone())
        .expect(200, "write b");
    let mem = Mem::of(&s);

    let dry = replace(
        &api,
        json!({"pattern": "x", "replacement": replacement, "path": "/big/a.txt", "regex": false, "dry_run": true}),
    );
    assert_eq!(dry["replacements"], 512 << 10, "{dry}");
    assert_eq!(dry["dry_run"], true);
    mem.assert_peak_within(REWRITE_BOUND, "dry run");
    assert_eq!(std::fs::read(data.join("big/a.txt")).unwrap(), original);

    // A regex (line by line) on one file, a literal on the other.
    let done = replace(
        &api,
        json!({"pattern": "x", "replacement": replacement, "path": "/big/a.txt", "regex": true}),
    );
    assert_eq!(done["replacements"], 512 << 10, "{done}");
    mem.assert_peak_within(REWRITE_BOUND, "regex replace");
    assert!(std::fs::read(data.join("big/a.txt")).unwrap() == expected);

    let done = replace(
        &api,
        json!({"pattern": "x", "replacement": replacement, "path": "/big/b.txt", "regex": false}),
    );
    assert_eq!(done["files_changed"], 1, "{done}");
    mem.assert_peak_within(REWRITE_BOUND, "literal replace");
    assert!(std::fs::read(data.join("big/b.txt")).unwrap() == expected);

    // Edit: every `!\n` (512 Ki of them) becomes 200 bytes again.
    api.write(VOL, "/big/c.txt", original.clone())
        .expect(200, "write c");
    let st = api
        .post_json(
            &format!("/v1/volumes/{VOL}/files/edit"),
            &json!({"path": "/big/c.txt", "old": "x\n", "new": format!("{replacement}\n"), "count": 512 << 10}),
        )
        .expect(200, "edit")
        .json();
    assert_eq!(st["size"], expected.len() as u64);
    mem.assert_peak_within(REWRITE_BOUND, "edit");
    assert!(std::fs::read(data.join("big/c.txt")).unwrap() == expected);

    // A pattern that can span lines still gives replace_all's answer.
    api.write(VOL, "/ml.txt", "a\nb\na\nb\n")
        .expect(200, "write");
    replace(
        &api,
        json!({"pattern": "a\\nb", "replacement": "<$0>", "path": "/ml.txt", "regex": true}),
    );
    assert_eq!(api.read(VOL, "/ml.txt").text(), "<a\nb>\n<a\nb>\n");
    assert!(s.healthy());
    s.assert_no_server_faults();
}

/// One exec's answer: status 200 and the JSON.
fn exec(api: &Api, id: &str, cmd: &str) -> Value {
    api.post_json(
        &format!("/v1/sandboxes/{id}/exec"),
        &json!({"cmd": ["/bin/sh", "-c", cmd]}),
    )
    .expect(200, cmd)
    .json()
}

fn b64(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .unwrap()
}

#[test]
fn exec_printing_64mib_of_nul_bytes_is_cut_to_the_budget_and_stays_bounded() {
    let mut s = harness::SandboxServer(Server::start(), Vec::new());
    let api = s.api();
    api.create_volume(VOL);
    let sb = api
        .post_json(
            "/v1/sandboxes",
            &json!({"volumes": [{"volume": VOL, "mount_path": "/v"}]}),
        )
        .expect(201, "create a sandbox")
        .json();
    let id = sb["id"].as_str().unwrap().to_owned();
    s.1.push(id.clone());

    // Below the budget, bytes round-trip exactly: text as text, the rest as base64.
    let text = "héllo wörld\n\"quoted\" \\ tab\t".repeat(100);
    let out = exec(
        &api,
        &id,
        &format!("printf '%s' '{}'", text.replace('\'', "'\\''")),
    );
    assert_eq!(out["stdout"], text.as_str());
    assert!(out.get("stdout_base64").is_none(), "{out}");
    assert_eq!(out["truncated"], false);
    let binary: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
    api.write(VOL, "/bin.dat", binary.clone())
        .expect(200, "write");
    let out = exec(&api, &id, "cat /v/bin.dat; cat /v/bin.dat >&2");
    assert_eq!(out["stdout"], "");
    assert!(b64(&out["stdout_base64"]) == binary, "stdout round-trips");
    assert!(b64(&out["stderr_base64"]) == binary, "stderr round-trips");
    assert_eq!(out["truncated"], false);
    assert_eq!(out["exit_code"], 0);
    // `nullspace sandbox exec` writes the original bytes.
    let cli = s.cli(&["sandbox", "exec", &id, "--", "cat", "/v/bin.dat"]);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        cli.stdout == binary,
        "the CLI's stdout is the original bytes"
    );
    let mem = Mem::of(&s);

    // 64 MiB of NUL bytes: cut to the budget, flagged.
    let r = api.post_json(
        &format!("/v1/sandboxes/{id}/exec"),
        &json!({"cmd": ["/bin/sh", "-c", "head -c 67108864 /dev/zero"]}),
    );
    assert!(
        r.body.len() <= BUDGET + 4096,
        "answer of {} bytes",
        r.body.len()
    );
    let out = r.expect(200, "exec of 64 MiB of NULs").json();
    assert_eq!(out["truncated"], true);
    assert_eq!(out["stdout"], "");
    let got = b64(&out["stdout_base64"]);
    assert!(
        got.len() >= BUDGET / 2 && got.iter().all(|&b| b == 0),
        "{} bytes",
        got.len()
    );
    mem.assert_peak_within(EXEC_BOUND, "one exec of 64 MiB of NULs");

    // Four at once.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let api = s.api();
            let id = id.clone();
            std::thread::spawn(move || {
                let out = exec(
                    &api,
                    &id,
                    "head -c 67108864 /dev/zero; head -c 67108864 /dev/zero >&2",
                );
                assert_eq!(out["truncated"], true);
                let n = b64(&out["stdout_base64"]).len() + b64(&out["stderr_base64"]).len();
                assert!(n * 4 / 3 <= BUDGET, "{n} bytes within the budget");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    mem.assert_peak_within(EXEC4_BOUND, "four execs of 2 × 64 MiB of NULs at once");
    assert!(s.healthy());
    s.assert_no_server_faults();
}
