"""Configuration resolution: arguments, env, `nullspace login` profile, server bootstrap file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nullspace
from nullspace import Volume, resolve_config
from nullspace._client import default_client

from conftest import Server, unique_name


def write_json(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_default_without_anything(isolated_env: Path) -> None:
    c = resolve_config()
    assert (c.url, c.key, c.url_source, c.key_source) == ("http://127.0.0.1:7420", None, "default", None)
    assert nullspace.DEFAULT_URL == "http://127.0.0.1:7420"


def test_profile_in_home_config(isolated_env: Path) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"url": "http://profile:1", "key": "kp"})
    c = resolve_config()
    assert (c.url, c.key) == ("http://profile:1", "kp")
    assert c.url_source.startswith("profile")


def test_profile_in_xdg_config_home(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"url": "http://home:1", "key": "kh"})
    write_json(tmp_path / "xdg/nullspace/config.json", {"url": "http://xdg:1", "key": "kx"})
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert (resolve_config().url, resolve_config().key) == ("http://xdg:1", "kx")


def test_bootstrap_file_locations(isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".local/share/nullspace/client.json", {"url": "http://home-data:1", "key": "k1"})
    assert (resolve_config().url, resolve_config().key) == ("http://home-data:1", "k1")
    write_json(tmp_path / "xdgdata/nullspace/client.json", {"url": "http://xdg-data:1", "key": "k2"})
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdgdata"))
    assert (resolve_config().url, resolve_config().key) == ("http://xdg-data:1", "k2")
    write_json(tmp_path / "datadir/client.json", {"url": "http://data-dir:1", "key": "k3"})
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path / "datadir"))
    c = resolve_config()
    assert (c.url, c.key) == ("http://data-dir:1", "k3")
    assert c.key_source is not None and c.key_source.startswith("bootstrap")


def test_order_argument_env_profile_bootstrap(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".local/share/nullspace/client.json", {"url": "http://boot:1", "key": "kb"})
    assert resolve_config().url == "http://boot:1"
    write_json(isolated_env / ".config/nullspace/config.json", {"url": "http://profile:1", "key": "kp"})
    assert (resolve_config().url, resolve_config().key) == ("http://profile:1", "kp")
    monkeypatch.setenv("NULLSPACE_API_URL", "http://env:1")
    monkeypatch.setenv("NULLSPACE_API_KEY", "ke")
    assert (resolve_config().url, resolve_config().key) == ("http://env:1", "ke")
    c = resolve_config("http://arg:1", "ka")
    assert (c.url, c.key, c.url_source, c.key_source) == ("http://arg:1", "ka", "argument", "argument")


def test_file_key_only_used_for_its_own_url(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".local/share/nullspace/client.json", {"url": "http://127.0.0.1:7420", "key": "local"})
    monkeypatch.setenv("NULLSPACE_API_URL", "http://remote.example:7420")
    assert resolve_config().key is None  # the local key is not sent to another server
    monkeypatch.setenv("NULLSPACE_API_URL", "http://127.0.0.1:7420/")
    assert resolve_config().key == "local"


def test_env_url_with_profile_key(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"url": "http://srv:7420", "key": "kp"})
    monkeypatch.setenv("NULLSPACE_API_URL", "http://srv:7420")
    c = resolve_config()
    assert (c.url, c.key, c.url_source) == ("http://srv:7420", "kp", "env NULLSPACE_API_URL")


def test_broken_bootstrap_file_is_ignored_but_broken_profile_is_an_error(isolated_env: Path) -> None:
    write_json(isolated_env / ".local/share/nullspace/client.json", ["a", "list"])
    assert resolve_config().url == "http://127.0.0.1:7420"
    (isolated_env / ".local/share/nullspace/client.json").write_text("{not json")
    assert resolve_config().url == "http://127.0.0.1:7420"
    p = isolated_env / ".config/nullspace/config.json"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    with pytest.raises(nullspace.InvalidArgumentError) as e:
        resolve_config()
    assert str(p) in e.value.message
    # Explicit settings do not need the profile at all.
    assert resolve_config("http://a:1", "k").key == "k"


def test_file_without_url_is_skipped(isolated_env: Path) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"key": "orphan"})
    c = resolve_config()
    assert (c.url, c.key) == ("http://127.0.0.1:7420", None)


def test_relative_xdg_dirs_are_ignored(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"url": "http://home:1", "key": "kh"})
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert resolve_config().url == "http://home:1"


def test_key_is_redacted_in_repr() -> None:
    c = nullspace.Client("http://x:1", "nsk_secret")
    assert "nsk_secret" not in repr(c) and "nsk_secret" not in repr(c.config)
    c.close()


def test_url_without_scheme_gets_http() -> None:
    assert resolve_config("localhost:7420").url == "http://localhost:7420"


# --------------------------------------------------------------------------- against the server


def test_env_vars_reach_the_server(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NULLSPACE_API_URL", server.url)
    monkeypatch.setenv("NULLSPACE_API_KEY", server.admin_key)
    name = unique_name()
    v = Volume.create(name)
    try:
        assert default_client().config.key_source == "env NULLSPACE_API_KEY"
        assert Volume.from_name(name).id == v.id
    finally:
        Volume.delete(name)


def test_bootstrap_file_of_the_server_needs_no_configuration(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # The server wrote client.json into its data dir at first start (mode 0600).
    path = server.data_dir / "client.json"
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(server.data_dir))
    assert default_client().url == server.url
    name = unique_name()
    Volume.create(name)
    assert name in [v.name for v in Volume.list()]
    Volume.delete(name)


def test_profile_reaches_the_server_and_env_beats_it(
    server: Server, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(isolated_env / ".config/nullspace/config.json", {"url": server.url, "key": server.admin_key})
    Volume.list()
    nullspace._client.reset_default_client()
    monkeypatch.setenv("NULLSPACE_API_KEY", "nsk_wrong_key_from_env")
    with pytest.raises(nullspace.UnauthenticatedError):
        Volume.list()


def test_configure_sets_the_default_client(server: Server) -> None:
    c = nullspace.configure(server.url, server.admin_key)
    assert default_client() is c
    Volume.list()


def test_profile_written_by_nullspace_login_is_used(
    server: Server, isolated_env: Path
) -> None:
    import os
    import subprocess

    from conftest import server_binary

    key = server.create_tenant()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NULLSPACE_")}
    env["HOME"] = str(isolated_env)
    done = subprocess.run(
        [str(server_binary()), "login", "--url", server.url, "--key", key],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (isolated_env / ".config/nullspace/config.json").exists()
    c = default_client()
    assert c.url == server.url and c.config.key == key
    assert c.config.key_source is not None and c.config.key_source.startswith("profile")
    name = unique_name()
    Volume.create(name)  # in the new tenant, not the default one
    with nullspace.Client(server.url, server.admin_key) as admin:
        assert name not in [v.name for v in Volume.list(client=admin)]
    Volume.delete(name)
