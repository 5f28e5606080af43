#!/usr/bin/env python3
"""Checks that every invariant in ARCHITECTURE.md names a test that exists.

Each numbered item of the "## Invariants" section reads ``**claim** … — FILE `test_name` …``:
after its first " — ", every backticked snake_case name must occur in the file named last
before it (a path ending in .rs or .py, relative to the repository root). An item marked
``*(issue 10)*`` may name a test that is still being written: it is reported, not failed.
Exit status 1 when an item names no test or a test that is not there, or when the document
is longer than MAX_LINES (a map is read whole; detail belongs in docs/).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANNED = "*(issue 10)*"
MAX_LINES = 220
PATH = re.compile(r"(?:crates|sdk|bench|scripts)/[\w./-]+\.(?:rs|py)")
NAME = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")


def invariants(text: str) -> list[tuple[int, str]]:
    """The numbered items of the Invariants section, each as one line of text."""
    section = text.split("\n## Invariants\n", 1)[1].split("\n## ", 1)[0]
    items: list[tuple[int, str]] = []
    for line in section.splitlines():
        m = re.match(r"(\d+)\. (.*)", line)
        if m:
            items.append((int(m.group(1)), m.group(2)))
        elif items and line.startswith(" "):
            n, body = items[-1]
            items[-1] = (n, body + "\n" + line.strip())
    # A path broken after a slash at the end of a line is one path.
    return [(n, re.sub(r"/\n", "/", body).replace("\n", " ")) for n, body in items]


def check(n: int, body: str) -> list[str]:
    if " — " not in body:
        return [f"invariant {n} names no test (no ' — ' before its tests)"]
    tests = body.split(" — ", 1)[1]
    problems, named, current = [], 0, None
    for m in re.finditer(f"{PATH.pattern}|{NAME.pattern}", tests):
        if m.group(1) is None:
            current = ROOT / m.group(0)
            continue
        name, named = m.group(1), named + 1
        if current is None:
            problems.append(f"invariant {n}: `{name}` follows no file")
        elif not current.is_file():
            problems.append(f"invariant {n}: {current.relative_to(ROOT)} does not exist")
        elif not re.search(rf"\b{name}\b", current.read_text(errors="replace")):
            problems.append(f"invariant {n}: no `{name}` in {current.relative_to(ROOT)}")
    if named == 0:
        problems.append(f"invariant {n} names no test")
    return problems


def main() -> int:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    lines = text.count("\n")
    if lines > MAX_LINES:
        print(f"ARCHITECTURE.md: {lines} lines, more than {MAX_LINES}: move detail to docs/",
              file=sys.stderr)
        return 1
    items = invariants(text)
    if not items:
        print("ARCHITECTURE.md: no numbered invariants found", file=sys.stderr)
        return 1
    failed = 0
    for n, body in items:
        for p in check(n, body):
            if PLANNED in body:
                print(f"notice: {p} (planned)")
            else:
                print(f"ARCHITECTURE.md: {p}", file=sys.stderr)
                failed += 1
    print(f"ARCHITECTURE.md: {len(items)} invariants, {failed} naming a missing test")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
