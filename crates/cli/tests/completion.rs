//! `nullspace completion bash|zsh|fish` (issue 15): the bash script, loaded into a real bash,
//! completes verbs and flags of the real command tree; zsh and fish scripts name it too.

mod harness;

use std::process::Command;

fn script(shell: &str) -> String {
    let out = Command::new(harness::BIN)
        .args(["completion", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash's programmable completion offers for `words` (the last one being completed).
fn bash_complete(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nullspace.bash");
    std::fs::write(&file, script("bash")).unwrap();
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         _nullspace nullspace '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completion_completes_verbs_and_flags() {
    let top = bash_complete(&["nullspace", "vol"]);
    assert_eq!(top, vec!["volume"], "{top:?}");
    let verbs = bash_complete(&["nullspace", "volume", ""]);
    for v in ["create", "list", "write", "upload", "download"] {
        assert!(verbs.iter().any(|w| w == v), "{v} not offered: {verbs:?}");
    }
    let flags = bash_complete(&["nullspace", "server", "--cors"]);
    assert_eq!(flags, vec!["--cors-origin"], "{flags:?}");
    let shells = bash_complete(&["nullspace", "completion", ""]);
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|w| w == s), "{shells:?}");
    }
}

#[test]
fn zsh_and_fish_scripts_cover_the_command_tree() {
    let zsh = script("zsh");
    assert!(
        zsh.starts_with("#compdef nullspace"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    assert!(zsh.contains("volume") && zsh.contains("--cors-origin"));
    let fish = script("fish");
    assert!(fish.contains("complete -c nullspace"));
    assert!(fish.contains("cors-origin") && fish.contains("sandbox"));
    let out = Command::new(harness::BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}
