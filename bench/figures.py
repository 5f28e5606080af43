"""Benchmark figures as data, and the summary table of BENCHMARKS.md built from them.

Each ``bench/results/<bench>.json`` holds one benchmark's current figures::

    {"bench": "transfer", "order": 10,
     "command": "python3 bench/run.py --only transfer",
     "measured": {"date": "2026-11-29", "commit": "<40 hex digits>", "dirty": false,
                  "commit_is": "built"},
     "attribution": "how that commit is known",
     "code_paths": ["crates/cli/src", ...],
     "notes": "bench/notes/issue2-3.md",
     "figures": [{"subsystem": "data plane", "what": "...", "ours": "...", "baseline": "...",
                  "ratio": "...", "goal": "...", "met": "..."}]}

``commit`` is the commit the measured code was built from (``commit_is: "built"``) or, when
the run did not record its build, the commit that recorded the figures (``"recorded"``);
``dirty`` says the build had uncommitted changes under ``code_paths``. A figure is *stale* when
it no longer describes the code: a commit after ``commit`` touched one of its ``code_paths``,
or it was measured on uncommitted code. The summary is written only from fresh figures
(``--allow-stale`` writes it anyway and marks the stale rows); ``--check`` verifies that the
summary in BENCHMARKS.md is the one the result files give. Standard library only.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOC = ROOT / "BENCHMARKS.md"

SUBSYSTEMS = ("data plane", "transfers", "SDK", "sandboxes", "control plane", "console")
FIGURE_KEYS = ("subsystem", "what", "ours", "baseline", "ratio", "goal", "met")
BEGIN = "<!-- summary: written by `python3 bench/run.py --summary` from bench/results/*.json at commit "
END = "<!-- end of summary -->"

# The code each of bench/run.py's benchmarks measures (the server behind the CLI or the SDK,
# and the client itself). crates/node is where the server's use cases move in issue 10.
SERVER = ["crates/core/src", "crates/state/src", "crates/volumes/src", "crates/api/src", "crates/node/src"]
CLI = ["crates/cli/src", "crates/client/src"]
SDK = ["sdk/python/nullspace"]
CODE_PATHS: Dict[str, List[str]] = {
    "transfer": SERVER + CLI,
    "batch": SERVER + CLI,
    "ls": SERVER + CLI,
    "stat": SERVER,
    "sdk_transfer": SERVER + CLI + SDK,
    "sdk_small": SERVER + SDK,
    "batch_atomic": ["crates/volumes/src/handle/batch.rs", "crates/volumes/src/journal.rs"],
    "hostile_load": SERVER,
}
# Where the run of bench/run.py puts its long report, and the subsystem of each issue's rows.
RUN_NOTES = "bench/notes/issue2-3.md"
RUN_SUBSYSTEM = {2: "data plane", 3: "SDK", 12: "data plane"}
# Benchmarks of bench/run.py whose long form is a note of their own.
NOTES_OF = {"hostile_load": "bench/notes/issue12-budgets.md"}


class FigureError(Exception):
    """A result file that cannot be used, or a summary that is not what the files give."""


@dataclass
class Result:
    path: Path
    doc: dict

    @property
    def commit(self) -> str:
        return str(self.doc["measured"]["commit"])

    @property
    def name(self) -> str:
        return self.path.name


def git(*args: str) -> Optional[str]:
    """Output of a git command in the repository, or None when it fails."""
    try:
        r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def history_available() -> bool:
    """Whether git and this repository's full history are here (not a tarball or shallow clone)."""
    return git("rev-parse", "--is-shallow-repository") == "false"


def load(results: Path = RESULTS) -> List[Result]:
    """Every result file, checked for shape; sorted by (order, file name)."""
    out = []
    for p in sorted(results.glob("*.json")):
        try:
            doc = json.loads(p.read_text())
        except ValueError as e:
            raise FigureError(f"{p.name}: not JSON: {e}") from None
        validate(p.name, doc)
        out.append(Result(p, doc))
    if not out:
        raise FigureError(f"no result files in {results}")
    return sorted(out, key=lambda r: (int(r.doc.get("order", 100)), r.name))


def validate(name: str, doc: object) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise FigureError(f"{name}: {what}")

    need(isinstance(doc, dict), "not an object")
    assert isinstance(doc, dict)
    for key in ("bench", "command", "measured", "attribution", "code_paths", "notes", "figures"):
        need(key in doc, f"no {key!r}")
    m = doc["measured"]
    need(isinstance(m, dict), "'measured' is not an object")
    need(isinstance(m.get("commit"), str) and re.fullmatch(r"[0-9a-f]{40}", m["commit"]) is not None,
         "'measured.commit' is not 40 hex digits")
    need(isinstance(m.get("date"), str) and re.fullmatch(r"\d{4}-\d\d-\d\d", m["date"]) is not None,
         "'measured.date' is not YYYY-MM-DD")
    need(isinstance(m.get("dirty"), bool), "'measured.dirty' is not true or false")
    need(m.get("commit_is") in ("built", "recorded"), "'measured.commit_is' is not 'built' or 'recorded'")
    paths = doc["code_paths"]
    need(isinstance(paths, list) and bool(paths) and all(isinstance(p, str) and p for p in paths),
         "'code_paths' is not a list of paths")
    need((ROOT / doc["notes"]).is_file(), f"notes file {doc['notes']} does not exist")
    figs = doc["figures"]
    need(isinstance(figs, list) and bool(figs), "'figures' is empty")
    for i, f in enumerate(figs):
        need(isinstance(f, dict) and all(isinstance(f.get(k), str) for k in FIGURE_KEYS),
             f"figure {i} lacks one of {', '.join(FIGURE_KEYS)}")
        need(f["subsystem"] in SUBSYSTEMS, f"figure {i}: subsystem {f['subsystem']!r} is not one of {SUBSYSTEMS}")
        need(not any(re.search(r"(?<!\\)\|", f[k]) for k in FIGURE_KEYS),
             f"figure {i}: a '|' in a cell is written '\\|'")


def staleness(r: Result, at: str) -> Optional[str]:
    """Why the figures of `r` do not describe the code at commit `at`, or None when they do."""
    c = r.commit
    if git("cat-file", "-e", f"{c}^{{commit}}") is None:
        raise FigureError(f"{r.name}: commit {c[:12]} is not in this repository's history")
    if git("merge-base", "--is-ancestor", c, at) is None:
        raise FigureError(f"{r.name}: commit {c[:12]} is not an ancestor of {at[:12]}")
    newer = git("log", "--format=%h", f"{c}..{at}", "--", *r.doc["code_paths"])
    if newer is None:
        raise FigureError(f"{r.name}: git log failed")
    changes = newer.split()
    if changes:
        more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
        return f"its code changed in `{changes[0]}`{more}"
    if r.doc["measured"]["dirty"]:
        return "measured on uncommitted changes to its code"
    return None


def uncommitted(r: Result) -> bool:
    """Whether the working tree has uncommitted changes under the figure's code paths."""
    out = git("status", "--porcelain", "--untracked-files=no", "--", *r.doc["code_paths"])
    return bool(out)


def render(results: Sequence[Result], at: str, stale: Dict[str, str]) -> str:
    """The summary block: the table, then the stale figures (by file) when there are any."""
    m0 = {n: i for i, n in enumerate(SUBSYSTEMS)}
    rows: List[Tuple[int, int, int, dict, Result]] = []
    for ri, r in enumerate(results):
        for fi, f in enumerate(r.doc["figures"]):
            rows.append((m0[f["subsystem"]], ri, fi, f, r))
    rows.sort(key=lambda x: x[:3])
    lines = [
        f"{BEGIN}{at}; do not edit by hand -->",
        "| subsystem | what | ours | baseline | ratio | goal | met? | measured | details |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    last = None
    for _, _, _, f, r in rows:
        m = r.doc["measured"]
        when = f"{m['date']}, {'recorded in ' if m['commit_is'] == 'recorded' else ''}`{r.commit[:7]}`"
        when += " + uncommitted" if m["dirty"] else ""
        if r.name in stale:
            when += " · **stale**"
        sub = f["subsystem"] if f["subsystem"] != last else ""
        last = f["subsystem"]
        notes = r.doc["notes"]
        link = f"[{Path(notes).name}]({notes})"
        lines.append(f"| {sub} | {f['what']} | {f['ours']} | {f['baseline']} | {f['ratio']} | {f['goal']} "
                     f"| {f['met']} | {when} | {link} |")
    if stale:
        lines += ["", f"Stale when this summary was written (at `{at[:7]}`): the code these figures "
                  "describe changed after they were measured, so they need a new run:"]
        lines += [f"- `bench/results/{name}` ({results_by_name(results)[name].doc['bench']}): {why}"
                  for name, why in sorted(stale.items())]
    lines.append(END)
    return "\n".join(lines)


def results_by_name(results: Sequence[Result]) -> Dict[str, Result]:
    return {r.name: r for r in results}


def stale_at(results: Sequence[Result], at: str) -> Dict[str, str]:
    out = {}
    for r in results:
        why = staleness(r, at)
        if why:
            out[r.name] = why
    return out


def head() -> str:
    h = git("rev-parse", "HEAD")
    if h is None:
        raise FigureError("not in a git checkout: the summary needs git to date its figures")
    return h


def current_block(text: str) -> Tuple[int, int, str]:
    """(start, end, commit) of the summary block in BENCHMARKS.md's text."""
    i = text.find(BEGIN)
    j = text.find(END)
    if i < 0 or j < i:
        raise FigureError("BENCHMARKS.md has no summary block")
    at = text[i + len(BEGIN):].split(";", 1)[0].strip()
    if not re.fullmatch(r"[0-9a-f]{40}", at):
        raise FigureError("the summary block does not name the commit it was written at")
    return i, j + len(END), at


def write_summary(allow_stale: bool) -> List[str]:
    """Rewrites the summary block of BENCHMARKS.md from the result files at HEAD. Returns the
    stale figures; raises FigureError (and writes nothing) when there are some and not
    `allow_stale`, or when the working tree has uncommitted changes to a figure's code."""
    results = load()
    at = head()
    stale = stale_at(results, at)
    for r in results:
        if r.name not in stale and uncommitted(r):
            stale[r.name] = "its code has uncommitted changes"
    if stale and not allow_stale:
        raise FigureError("refusing to write the summary from figures older than their code:\n"
                          + "\n".join(f"  bench/results/{n}: {w}" for n, w in sorted(stale.items()))
                          + "\nre-run those benchmarks (or pass --allow-stale to write it with them marked)")
    uncommitted_stale = {n for n, w in stale.items() if w == "its code has uncommitted changes"}
    if uncommitted_stale:
        # The block must be reproducible from history alone (--check); such rows are not marked.
        raise FigureError("commit the code first: uncommitted changes under the code paths of "
                          + ", ".join(sorted(uncommitted_stale)))
    text = DOC.read_text()
    i, j, _ = current_block(text)
    DOC.write_text(text[:i] + render(results, at, stale) + text[j:])
    return [f"bench/results/{n}: {w}" for n, w in sorted(stale.items())]


def check(allow_stale: bool) -> Tuple[List[str], List[str]]:
    """(problems, warnings). Problems: a result file that cannot be used, or a summary in
    BENCHMARKS.md that is not what the result files give (at the commit it names). Stale
    figures at HEAD are problems unless `allow_stale`, then warnings."""
    problems: List[str] = []
    warnings: List[str] = []
    try:
        results = load()
        i, j, written_at = current_block(DOC.read_text())
    except FigureError as e:
        return [str(e)], warnings
    block = DOC.read_text()[i:j]
    missing: Dict[str, List[str]] = {}
    for r in results:
        for p in r.doc["code_paths"]:
            if not (ROOT / p).exists():
                missing.setdefault(p, []).append(r.name)
    for p, names in sorted(missing.items()):
        warnings.append(f"code path {p} of {len(names)} result file(s) does not exist (yet, or moved)")
    if not history_available():
        warnings.append("no full git history here (shallow clone or no git): figure dates not checked")
        ours = render(results, written_at, {})
        strip = [ln.replace(" · **stale**", "") for ln in block.splitlines() if ln.startswith("|")]
        if strip != [ln for ln in ours.splitlines() if ln.startswith("|")]:
            problems.append("BENCHMARKS.md's summary table is not what bench/results/*.json give: "
                            "run `python3 bench/run.py --summary`")
        return problems, warnings
    try:
        expected = render(results, written_at, stale_at(results, written_at))
        if block != expected:
            problems.append("BENCHMARKS.md's summary is not what bench/results/*.json give at the commit it "
                            f"names ({written_at[:7]}): run `python3 bench/run.py --summary`")
        stale = stale_at(results, head())
        for r in results:
            if r.name not in stale and uncommitted(r):
                stale[r.name] = "its code has uncommitted changes"
    except FigureError as e:
        return problems + [str(e)], warnings
    if allow_stale and stale:
        warnings.append(f"{len(stale)} of {len(results)} result files are older than their code "
                        f"({', '.join(sorted(stale))}): `python3 bench/run.py --check` says why")
    elif stale:
        problems += [f"stale: bench/results/{n}: {w}" for n, w in sorted(stale.items())]
    return problems, warnings
