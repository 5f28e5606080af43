"""search, replace, edit and watch against the real server."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List

import pytest

import nullspace
from nullspace import ReplacedFile, ReplaceResult, SearchMatch, Volume, WatchEvent


@pytest.fixture
def docs(volume: Volume) -> Volume:
    f = volume.files
    f.write("/src/main.rs", 'fn main() {\n    println!("Hello");\n}\n')
    f.write("/src/lib.rs", "pub fn hello() -> &'static str {\n    \"hello world\"\n}\n")
    f.write("/src/deep/util.rs", "// TODO: hello again\nlet a.b = 1;\n")
    f.write("/notes.txt", "Hello notes\naxb\n")
    f.write("/bin/blob.bin", b"hello\x00binary\nhello\n")
    f.write("/unicode.txt", "héllo hello\n")
    return volume


def where(results: object) -> List[str]:
    return [f"{m.path}:{m.line}:{m.column}" for m in results]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------- search


def test_search_streams_matches_in_path_order(docs: Volume) -> None:
    with docs.files.search("hello") as results:
        first = next(results)
        assert first == SearchMatch(path="/src/deep/util.rs", line=1, column=10, text="// TODO: hello again")
        assert results.total is None  # not known before the end
        rest = list(results)
    assert where(rest) == ["/src/lib.rs:1:8", "/src/lib.rs:2:6", "/unicode.txt:1:8"]
    assert results.total == 4 and results.truncated is False and results.closed


def test_search_options(docs: Volume) -> None:
    f = docs.files
    assert where(f.search("HELLO", ignore_case=True)) == [
        "/notes.txt:1:1",
        "/src/deep/util.rs:1:10",
        "/src/lib.rs:1:8",
        "/src/lib.rs:2:6",
        "/src/main.rs:2:15",
        "/unicode.txt:1:8",
    ]
    assert where(f.search("hello", "/src")) == ["/src/deep/util.rs:1:10", "/src/lib.rs:1:8", "/src/lib.rs:2:6"]
    assert where(f.search("hello", "/src/lib.rs")) == ["/src/lib.rs:1:8", "/src/lib.rs:2:6"]
    assert where(f.search("hello", glob="src/*.rs")) == ["/src/lib.rs:1:8", "/src/lib.rs:2:6"]
    assert len(list(f.search("hello", glob="*.rs"))) == 3
    assert where(f.search("a.b")) == ["/notes.txt:2:1", "/src/deep/util.rs:2:5"]
    assert where(f.search("a.b", regex=False)) == ["/src/deep/util.rs:2:5"]
    # Binary files are skipped.
    assert list(f.search("binary")) == []
    assert list(f.search("hello", "/bin")) == []


def test_search_max_results_truncates(docs: Volume) -> None:
    results = docs.files.search("hello", max_results=2)
    assert len(list(results)) == 2
    assert (results.total, results.truncated) == (2, True)
    results = docs.files.search("nothing here")
    assert list(results) == [] and (results.total, results.truncated) == (0, False)


def test_search_can_stop_early(docs: Volume) -> None:
    with docs.files.search("l") as results:
        next(results)
    assert results.closed
    assert list(results) == []


def test_search_errors(docs: Volume) -> None:
    with pytest.raises(nullspace.InvalidArgumentError) as e:
        docs.files.search("(unclosed")
    assert "unclosed group" in e.value.message and e.value.status == 400
    with pytest.raises(nullspace.InvalidArgumentError) as e:
        docs.files.search("x", glob="[a")
    assert "invalid glob" in e.value.message
    with pytest.raises(nullspace.NotFoundError):
        docs.files.search("x", "/nope")
    with pytest.raises(ValueError):
        docs.files.search("x", "relative")
    with pytest.raises(TypeError):
        docs.files.search(b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        docs.files.search("x", max_results=-1)


# ---------------------------------------------------------------------------------- replace


def test_replace_dry_run_changes_nothing(docs: Volume) -> None:
    f = docs.files
    before = {p: (f.read(p), f.stat(p).etag) for p in ("/src/lib.rs", "/unicode.txt")}
    result = f.replace("hello", "bye", dry_run=True)
    assert result == ReplaceResult(
        files=[
            ReplacedFile("/src/deep/util.rs", 1),
            ReplacedFile("/src/lib.rs", 2),
            ReplacedFile("/unicode.txt", 1),
        ],
        files_changed=3,
        replacements=4,
        dry_run=True,
    )
    assert {p: (f.read(p), f.stat(p).etag) for p in before} == before


def test_replace_rewrites_files_and_changes_etags(docs: Volume) -> None:
    f = docs.files
    old = f.stat("/src/lib.rs").etag
    untouched = f.stat("/src/main.rs").etag
    binary = f.stat("/bin/blob.bin").etag
    result = f.replace("hello", "bye")
    assert (result.files_changed, result.replacements, result.dry_run) == (3, 4, False)
    assert f.read("/src/lib.rs") == "pub fn bye() -> &'static str {\n    \"bye world\"\n}\n"
    assert f.stat("/src/lib.rs").etag != old
    assert f.stat("/src/main.rs").etag == untouched
    assert f.stat("/bin/blob.bin").etag == binary
    assert f.read_bytes("/bin/blob.bin") == b"hello\x00binary\nhello\n"


def test_replace_regex_groups_literal_glob_and_case(volume: Volume) -> None:
    f = volume.files
    f.write("/a/one.py", "x = f(1)\ny = f(22)\n")
    f.write("/a/two.txt", "f(3) F(4)\n")
    f.write("/b/three.py", "f(5) $1\n")
    r = f.replace(r"f\((\d+)\)", "g[$1]", glob="*.py")
    assert [(x.path, x.replacements) for x in r.files] == [("/a/one.py", 2), ("/b/three.py", 1)]
    assert f.read("/a/one.py") == "x = g[1]\ny = g[22]\n"
    assert f.read("/a/two.txt") == "f(3) F(4)\n"
    f.replace("$1", "$2", "/b", regex=False)
    assert f.read("/b/three.py") == "g[5] $2\n"
    r = f.replace("f(", "h(", "/a", regex=False, ignore_case=True)
    assert r.replacements == 2 and f.read("/a/two.txt") == "h(3) h(4)\n"
    assert f.replace("zzz", "y").files == []


def test_replace_keeps_the_cap(sdk: Any, tenant_client: Callable[..., nullspace.Client]) -> None:
    c = tenant_client(cap_bytes=1000)
    v = sdk.Volume.create("capped", client=c)
    v.files.write("/a.txt", "a" * 300)
    v.files.write("/b.txt", "a" * 300)
    etags = [v.files.stat(p).etag for p in ("/a.txt", "/b.txt")]
    with pytest.raises(nullspace.QuotaExceededError):
        v.files.replace("a", "aa")
    assert [v.files.stat(p).etag for p in ("/a.txt", "/b.txt")] == etags
    assert v.info().used_bytes == 600
    assert v.files.replace("a", "aa", dry_run=True).replacements == 600
    v.files.replace("a", "aa", "/a.txt")
    assert v.info().used_bytes == 900


def test_replace_errors(volume: Volume) -> None:
    volume.files.write("/x.txt", "x")
    with pytest.raises(nullspace.InvalidArgumentError) as e:
        volume.files.replace("(x", "y")
    assert "unclosed group" in e.value.message
    with pytest.raises(nullspace.InvalidArgumentError):
        volume.files.replace("x", "y", glob="[")
    with pytest.raises(nullspace.NotFoundError):
        volume.files.replace("x", "y", "/missing")


# ------------------------------------------------------------------------------------- edit


def test_edit_counts_occurrences(volume: Volume) -> None:
    f = volume.files
    st0 = f.write("/f.txt", "one two one three one\n")
    with pytest.raises(nullspace.ConflictError) as e:
        f.edit("/f.txt", "one", "1")
    assert "found 3" in e.value.message and "nothing changed" in e.value.message
    with pytest.raises(nullspace.ConflictError):
        f.edit("/f.txt", "one", "1", count=2)
    assert f.stat("/f.txt").etag == st0.etag
    st = f.edit("/f.txt", "two", "2")
    assert isinstance(st, nullspace.FileStat) and st.etag != st0.etag
    assert f.read("/f.txt") == "one 2 one three one\n"
    f.edit("/f.txt", "one", "1", count=3)
    assert f.read("/f.txt") == "1 2 1 three 1\n"
    f.edit("/f.txt", "1", "one", count=None)
    assert f.read("/f.txt") == "one 2 one three one\n"
    with pytest.raises(nullspace.ConflictError) as e:
        f.edit("/f.txt", "zzz", "y", count=None)
    assert "found 0" in e.value.message


def test_edit_if_match_and_errors(volume: Volume) -> None:
    f = volume.files
    st = f.write("/m.txt", "a\nb.*\nc\n")
    st2 = f.edit("/m.txt", "a\nb.*\n", "X\n", if_match=st)
    assert f.read("/m.txt") == "X\nc\n"
    with pytest.raises(nullspace.ConflictError):
        f.edit("/m.txt", "X", "Y", if_match=st.etag)
    f.edit("/m.txt", "X", "Y", if_match=st2.etag)
    assert f.read("/m.txt") == "Y\nc\n"
    with pytest.raises(nullspace.NotFoundError):
        f.edit("/missing.txt", "a", "b")
    with pytest.raises(ValueError):
        f.edit("/m.txt", "", "b")
    with pytest.raises(ValueError):
        f.edit("/m.txt", "a", "b", count=-1)
    with pytest.raises(TypeError):
        f.edit("/m.txt", b"a", "b")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ watch


def take(watch: nullspace.Watch, n: int, timeout: float = 20.0) -> List[WatchEvent]:
    """The next ``n`` events, read on a thread so that a hang fails instead of blocking."""
    out: List[WatchEvent] = []
    done = threading.Event()

    def run() -> None:
        for ev in watch:
            out.append(ev)
            if len(out) == n:
                break
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(timeout):
        watch.close()
        pytest.fail(f"only {len(out)} of {n} events within {timeout}s: {out}")
    return out


def test_watch_yields_each_change_in_order(volume: Volume) -> None:
    f = volume.files
    f.mkdir("/w/sub")
    with f.watch("/w") as events:
        f.write("/w/a.txt", "1")
        f.write("/w/a.txt", "2")
        f.move("/w/a.txt", "/w/sub/b.txt")
        f.edit("/w/sub/b.txt", "2", "3")
        f.replace("3", "4", "/w")
        f.write("/outside.txt", "x")
        f.remove("/w/sub", recursive=True)
        got = take(events, 6)
    assert [(e.type, e.path, e.old_path, e.is_dir) for e in got] == [
        ("created", "/w/a.txt", None, False),
        ("modified", "/w/a.txt", None, False),
        ("moved", "/w/sub/b.txt", "/w/a.txt", False),
        ("modified", "/w/sub/b.txt", None, False),
        ("modified", "/w/sub/b.txt", None, False),
        ("deleted", "/w/sub", None, True),
    ]
    ids = [e.id for e in got]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert all(e.time.tzinfo is not None and not e.is_gap for e in got)
    assert events.closed and events.last_event_id == ids[-1]


def test_watch_non_recursive_and_resume(volume: Volume) -> None:
    f = volume.files
    f.mkdir("/w/sub")
    with f.watch("/w", recursive=False) as events:
        f.write("/w/sub/deep.txt", "x")
        f.write("/w/top.txt", "x")
        (ev,) = take(events, 1)
    assert ev.path == "/w/top.txt"
    # Resuming after an id: retained events after it come first.
    f.write("/w/next.txt", "x")
    with f.watch("/w", last_event_id=ev.id) as events:
        (resumed,) = take(events, 1)
    assert (resumed.path, resumed.id) == ("/w/next.txt", ev.id + 1)


def test_watch_reconnects_by_itself_without_losing_events(volume: Volume) -> None:
    f = volume.files
    f.mkdir("/w")
    with f.watch("/w") as events:
        f.write("/w/0", "x")
        (first,) = take(events, 1)
        # The connection drops (as when a proxy or the network cuts it); changes go on.
        events._drop()
        for i in range(1, 6):
            f.write(f"/w/{i}", "x")
        got = take(events, 5)
    assert [e.path for e in got] == [f"/w/{i}" for i in range(1, 6)]
    assert [e.id for e in got] == list(range(first.id + 1, first.id + 6))


def test_watch_gap_marker_for_an_id_the_server_no_longer_has(volume: Volume) -> None:
    f = volume.files
    f.mkdir("/w")
    f.write("/w/a", "x")
    with f.watch("/w", last_event_id=1) as events:
        gap, ev = take(events, 2)
    assert gap.is_gap and gap.type == "gap" and gap.id == 1 and gap.path == "/w"
    assert gap.oldest_available is not None and gap.oldest_available > 1
    assert ev.type == "created" and ev.id >= gap.oldest_available


def test_watch_sees_writes_by_sandbox_code_once_each(sdk: Any, client: nullspace.Client, volume: Volume) -> None:
    f = volume.files
    f.mkdir("/w")
    with sdk.Sandbox.create(volumes=[volume.mount("/mnt/v")], client=client) as sb:
        with f.watch("/w") as events:
            assert sb.exec("echo hi > /mnt/v/w/a.txt; mkdir /mnt/v/w/d").exit_code == 0
            got = take(events, 2)
            # An API write while sandbox writes are observed: still one event.
            f.write("/w/api.txt", "x")
            got += take(events, 1)
            assert sb.exec("mv /mnt/v/w/a.txt /mnt/v/w/d/b.txt; echo more >> /mnt/v/w/d/b.txt").exit_code == 0
            got += take(events, 2)
            # The connection drops; a sandbox write meanwhile comes after the reconnection.
            events._drop()
            assert sb.exec("rm /mnt/v/w/d/b.txt").exit_code == 0
            got += take(events, 1)
    assert [(e.type, e.path, e.old_path, e.is_dir) for e in got] == [
        ("created", "/w/a.txt", None, False),
        ("created", "/w/d", None, True),
        ("created", "/w/api.txt", None, False),
        ("moved", "/w/d/b.txt", "/w/a.txt", False),
        ("modified", "/w/d/b.txt", None, False),
        ("deleted", "/w/d/b.txt", None, False),
    ]
    ids = [e.id for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_watch_close_stops_a_blocked_iteration(volume: Volume) -> None:
    volume.files.mkdir("/w")
    events = volume.files.watch("/w")
    threading.Timer(0.3, events.close).start()
    started = time.monotonic()
    assert list(events) == []
    assert time.monotonic() - started < 10
    assert events.closed


def test_watch_errors(volume: Volume) -> None:
    with pytest.raises(nullspace.NotFoundError):
        volume.files.watch("/missing")
    with pytest.raises(ValueError):
        volume.files.watch("relative")
    with pytest.raises(ValueError):
        volume.files.watch("/", last_event_id=-1)
