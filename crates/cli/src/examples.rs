//! The examples at the end of every command's `--help`, in one table (so that each command's
//! definition stays about its arguments). A unit test requires an entry for every command and
//! parses every example against the real command tree, so an example cannot go stale.

use clap::Command;

/// `(command path, example command lines)`; the path is the subcommand names from the top.
pub const EXAMPLES: &[(&str, &[&str])] = &[
    ("server", &[
        "nullspace server --listen 127.0.0.1:7420 --data-dir /var/lib/nullspace",
        "nullspace server --cors-origin https://app.example.com --cors-origin http://localhost:5173",
    ]),
    ("login", &["nullspace login --url http://127.0.0.1:7420 --key nsk_…"]),
    ("whoami", &["nullspace whoami --json"]),
    ("completion", &[
        "nullspace completion bash > /etc/bash_completion.d/nullspace",
        "nullspace completion zsh > ~/.zfunc/_nullspace",
        "nullspace completion fish > ~/.config/fish/completions/nullspace.fish",
    ]),
    ("admin", &["nullspace admin tenant create acme"]),
    ("admin tenant", &["nullspace admin tenant get-limits acme"]),
    ("admin tenant create", &["nullspace admin tenant create acme"]),
    ("admin tenant set-volume-cap", &["nullspace admin tenant set-volume-cap acme 10GiB"]),
    ("admin tenant set-limits", &[
        "nullspace admin tenant set-limits acme --max-sandboxes 20 --max-total-memory 64GiB",
    ]),
    ("admin tenant get-limits", &["nullspace admin tenant get-limits acme --json"]),
    ("key", &["nullspace key create --name ci --role member --expires 30d"]),
    ("key create", &["nullspace key create --name ci --role read-only --expires 30d"]),
    ("key list", &["nullspace key list --json"]),
    ("key revoke", &["nullspace key revoke key_0123456789abcdef"]),
    ("volume", &[
        "nullspace volume create team-data",
        "printf 'persistent\\n' | nullspace volume write team-data /hello.txt",
    ]),
    ("volume token", &["nullspace volume token team-data --path /reports --read-only --expires 1h"]),
    ("volume token list", &["nullspace volume token list --json"]),
    ("volume token revoke", &["nullspace volume token revoke key_0123456789abcdef"]),
    ("volume uploads", &["nullspace volume uploads team-data --json"]),
    ("volume uploads cancel", &["nullspace volume uploads cancel team-data upl_0123456789abcdef"]),
    ("volume create", &["nullspace volume create team-data --label team=ml --if-not-exists"]),
    ("volume list", &["nullspace volume list --label team=ml --fields name,used_bytes --json"]),
    ("volume get", &["nullspace volume get team-data --fields used_bytes,file_count"]),
    ("volume delete", &["nullspace volume delete team-data --force"]),
    ("volume rename", &["nullspace volume rename team-data team-archive"]),
    ("volume read", &["nullspace volume read team-data /logs/run.log --offset 1024 --length 4096"]),
    ("volume write", &[
        "printf 'hello\\n' | nullspace volume write team-data /hello.txt",
        "nullspace volume write team-data /model.bin --from ./model.bin",
    ]),
    ("volume write-batch", &["nullspace volume write-batch team-data ./site /www"]),
    ("volume upload", &[
        "nullspace volume upload team-data ./dataset.tar /data/dataset.tar",
        "tar -c src | nullspace volume upload team-data - /src.tar",
    ]),
    ("volume download", &[
        "nullspace volume download team-data /data ./data",
        "nullspace volume download team-data /data - --archive tar.gz > data.tar.gz",
    ]),
    ("volume url", &["nullspace volume url team-data /report.pdf --expires 1h --method GET"]),
    ("volume mkdir", &["nullspace volume mkdir team-data /a/b/c -p"]),
    ("volume mv", &["nullspace volume mv team-data /draft.md /final.md --force"]),
    ("volume cp", &["nullspace volume cp team-data /src /src-backup -r"]),
    ("volume rm", &["nullspace volume rm team-data /tmp -r"]),
    ("volume ls", &["nullspace volume ls team-data /src -r --glob '*.py' -l"]),
    ("volume stat", &["nullspace volume stat team-data /hello.txt --json"]),
    ("volume exists", &["nullspace volume exists team-data /hello.txt && echo present"]),
    ("volume search", &["nullspace volume search team-data 'TODO|FIXME' /src --glob '*.rs' -i"]),
    ("volume replace", &["nullspace volume replace team-data old_name new_name /src --glob '*.py' --dry-run"]),
    ("volume edit", &["nullspace volume edit team-data /config.toml --old 'debug = true' --new 'debug = false'"]),
    ("volume watch", &["nullspace volume watch team-data /src"]),
    ("sandbox", &["nullspace sandbox create --template base --volume ref=team-data,mount=/workspace/shared"]),
    ("sandbox create", &[
        "nullspace sandbox create --volume ref=team-data,mount=/workspace/shared,readonly --memory 2GiB",
    ]),
    ("sandbox list", &["nullspace sandbox list --json"]),
    ("sandbox get", &["nullspace sandbox get sbx_0123456789abcdef"]),
    ("sandbox exec", &["nullspace sandbox exec sbx_0123456789abcdef --cwd /workspace -- ls -la"]),
    ("sandbox files", &["nullspace sandbox files read sbx_0123456789abcdef /etc/os-release"]),
    ("sandbox files read", &["nullspace sandbox files read sbx_0123456789abcdef /etc/os-release"]),
    ("sandbox files write", &["printf 'x\\n' | nullspace sandbox files write sbx_0123456789abcdef /tmp/x.txt"]),
    ("sandbox files list", &["nullspace sandbox files list sbx_0123456789abcdef /workspace --json"]),
    ("sandbox attach", &["nullspace sandbox attach sbx_0123456789abcdef --volume ref=team-data,mount=/mnt/data"]),
    ("sandbox detach", &["nullspace sandbox detach sbx_0123456789abcdef /mnt/data"]),
    ("sandbox attachments", &["nullspace sandbox attachments sbx_0123456789abcdef --json"]),
    ("sandbox pause", &["nullspace sandbox pause sbx_0123456789abcdef"]),
    ("sandbox resume", &["nullspace sandbox resume sbx_0123456789abcdef"]),
    ("sandbox hibernate", &["nullspace sandbox hibernate sbx_0123456789abcdef"]),
    ("sandbox fork", &["nullspace sandbox fork sbx_0123456789abcdef"]),
    ("sandbox destroy", &["nullspace sandbox destroy sbx_0123456789abcdef"]),
];

/// `cmd` with every [`EXAMPLES`] entry appended to its command's `after_help`.
pub fn with_examples(mut cmd: Command) -> Command {
    for (path, lines) in EXAMPLES {
        let names: Vec<&str> = path.split(' ').collect();
        cmd = apply(cmd, &names, lines);
    }
    cmd
}

fn apply(cmd: Command, names: &[&str], lines: &[&str]) -> Command {
    match names {
        [] => {
            let mut text = match cmd.get_after_help() {
                Some(h) => format!("{h}\n\n"),
                None => String::new(),
            };
            text.push_str(if lines.len() > 1 {
                "Examples:"
            } else {
                "Example:"
            });
            for l in lines {
                text.push_str("\n  ");
                text.push_str(l);
            }
            cmd.after_help(text)
        }
        [first, rest @ ..] => cmd.mut_subcommand(*first, |c| apply(c, rest, lines)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words of a command line (single and double quotes; no other shell syntax).
    fn words(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quote = None;
        let mut any = false;
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    any = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, ' ') => {
                    if any {
                        out.push(std::mem::take(&mut cur));
                        any = false;
                    }
                }
                (_, c) => {
                    cur.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(cur);
        }
        out
    }

    /// The `nullspace …` part of an example (after a `|`, before a `>`, `|` or `&&`).
    fn invocation(line: &str) -> Vec<String> {
        let w = words(line);
        let start = w
            .iter()
            .position(|x| x == "nullspace")
            .expect("names nullspace");
        w[start..]
            .iter()
            .take_while(|x| !matches!(x.as_str(), ">" | "|" | "&&"))
            .map(|x| x.replace("\\n", "\n"))
            .collect()
    }

    fn paths(cmd: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = if prefix.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{prefix} {}", sub.get_name())
            };
            paths(sub, &path, out);
            out.push(path);
        }
    }

    #[test]
    fn every_command_has_an_example_and_every_example_parses() {
        let cmd = with_examples(crate::cli_command());
        let mut all = Vec::new();
        paths(&cmd, "", &mut all);
        for path in &all {
            assert!(
                EXAMPLES.iter().any(|(p, _)| p == path),
                "`nullspace {path}` has no example in EXAMPLES"
            );
        }
        for (path, lines) in EXAMPLES {
            assert!(all.iter().any(|p| p == path), "no command `{path}`");
            for line in *lines {
                let argv = invocation(line);
                let m = cmd
                    .clone()
                    .try_get_matches_from(&argv)
                    .unwrap_or_else(|e| panic!("example {line:?} does not parse: {e}"));
                // It runs the command it illustrates.
                let mut at = &m;
                for name in path.split(' ') {
                    let (got, sub) = at.subcommand().expect("a subcommand");
                    assert_eq!(got, name, "{line:?} is not an example of `{path}`");
                    at = sub;
                }
                for host in ["http://", "https://"] {
                    for url in line.split(host).skip(1) {
                        assert!(
                            url.starts_with("127.0.0.1")
                                || url.starts_with("localhost")
                                || url
                                    .split(['/', ':', ' '])
                                    .next()
                                    .unwrap_or("")
                                    .ends_with("example.com"),
                            "{line:?}: examples use localhost or example.com hosts"
                        );
                    }
                }
            }
        }
        let help = cmd
            .clone()
            .try_get_matches_from(["nullspace", "volume", "rename", "--help"])
            .unwrap_err()
            .to_string();
        assert!(
            help.contains("Example:\n  nullspace volume rename team-data team-archive"),
            "{help}"
        );
    }
}
