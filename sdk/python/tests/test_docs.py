"""Docs that run: every code block of README.md and sdk/python/README.md, in order, against a
fresh server per document — `sh` blocks through the CLI (bash, `nullspace` on PATH), `python`
blocks through the SDK (one namespace per document, as if pasted into one session), all in one
scratch working directory, with the server's URL and key in `NULLSPACE_API_URL`/`_KEY` (what
`client.json` gives on the server's own machine).

A block whose info string is `sh check-only` installs software or runs this very suite
(`scripts/install.sh`, `pip install`, `pytest`): running it here would recurse or reinstall the
SDK under test, so it is checked instead — bash parses it, and every repository path it names
exists. A block of any other language fails the test: a new kind needs a runner here.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import pytest

from nullspace import _client, aio

from conftest import REPO_ROOT, server_binary, start_server

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass
class Block:
    doc: str
    line: int
    info: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line} ({self.info or 'no language'})"


def blocks(doc: str) -> List[Block]:
    text = (REPO_ROOT / doc).read_text(encoding="utf-8")
    return [
        Block(doc, text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
        for m in FENCE.finditer(text)
    ]


def check_only(block: Block) -> None:
    subprocess.run(["bash", "-n"], input=block.code.encode(), check=True)
    for word in shlex.split(block.code, comments=True):
        if "/" in word and not word.startswith(("-", "$", "http")):
            assert (REPO_ROOT / word).exists(), f"{block.where} names {word}, which does not exist"


def run_sh(block: Block, cwd: Path, env: Dict[str, str]) -> None:
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert r.returncode == 0, (
        f"{block.where} failed with exit {r.returncode}:\n{block.code}\n"
        f"stdout:\n{r.stdout.decode(errors='replace')}\nstderr:\n{r.stderr.decode(errors='replace')}"
    )


def run_python(block: Block, namespace: Dict[str, Any]) -> None:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{block.doc}:{block.line}", "exec"), namespace)
    except BaseException as e:
        raise AssertionError(f"{block.where} raised {e!r}:\n{block.code}\noutput:\n{out.getvalue()}") from e


@pytest.mark.parametrize("doc", ["README.md", "sdk/python/README.md"])
def test_every_code_block_runs_in_order(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks(doc)
    assert found, f"{doc} has no code blocks"
    with start_server(tmp_path / "server") as server:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "nullspace").symlink_to(server_binary().resolve())
        work = tmp_path / "work"
        work.mkdir()
        monkeypatch.setenv("NULLSPACE_API_URL", server.url)
        monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)
        monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.chdir(work)
        _client.reset_default_client()
        aio.reset_default_client()
        env = dict(os.environ)
        namespace: Dict[str, Any] = {"__name__": "__main__"}
        ran = 0
        for block in found:
            kind = block.info.split()[0] if block.info else ""
            if block.info == "sh check-only":
                check_only(block)
            elif kind in ("sh", "bash"):
                run_sh(block, work, env)
            elif kind == "python":
                run_python(block, namespace)
            else:
                pytest.fail(f"{block.where}: no runner for this kind of block:\n{textwrap.indent(block.code, '  ')}")
            ran += 1
        assert ran == len(found)


def test_fence_parser_sees_every_block() -> None:
    # Each document's fences pair up: an odd count would mean a block the parser skipped.
    for doc in ("README.md", "sdk/python/README.md"):
        text = (REPO_ROOT / doc).read_text(encoding="utf-8")
        fences = [line for line in text.splitlines() if line.startswith("```")]
        assert len(fences) == 2 * len(blocks(doc)), doc


def test_docs_name_only_localhost_or_example_hosts() -> None:
    # A reader who runs an example must not send traffic to a real network.
    url = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s\"'`)>:]+)")
    ip = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
    for doc in ("README.md", "sdk/python/README.md"):
        text = (REPO_ROOT / doc).read_text(encoding="utf-8")
        for host in url.findall(text):
            ok = host in ("localhost", "127.0.0.1") or host == "example.com" or host.endswith(".example.com")
            assert ok, f"{doc} names the host {host!r}: use localhost or example.com"
        for addr in ip.findall(text):
            assert addr.startswith("127."), f"{doc} names the address {addr}: use localhost or example.com"
