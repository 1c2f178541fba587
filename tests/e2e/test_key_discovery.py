"""A server started anywhere on this machine is found with its key: ``computeplane keys show`` from any directory,
the client without a key; no key is ever sent empty; edits of the key file apply without a restart."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from computeplane.client import ComputePlaneClient
from computeplane.local_servers import state_dir
from tests.cli.test_installed_script import console_script
from tests.e2e.server import free_port, start_server, wait_for


def keys_show(endpoint: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COMPUTEPLANE_API_KEY", "COMPUTEPLANE_DATA_DIR")}
    return subprocess.run([*console_script(), "keys", "show", "--endpoint", endpoint, *extra], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)


def test_keys_show_finds_a_server_started_with_another_data_dir_from_any_directory_and_key_edits_apply_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPUTEPLANE_API_KEY")
    elsewhere, somewhere_else = tmp_path / "elsewhere", tmp_path / "unrelated-cwd"
    elsewhere.mkdir()
    somewhere_else.mkdir()
    server = start_server(elsewhere / "my-data")
    try:
        file_key = json.loads((elsewhere / "my-data" / "api-keys.json").read_text())["keys"][0]["key"]
        shown = keys_show(server.url, somewhere_else)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == f"{file_key}\n"
        assert httpx.get(f"{server.url}/api/workspaces/default/clusters",
                         headers={"x-functions-key": shown.stdout.strip()}).status_code == 200
        as_json = json.loads(keys_show(server.url, somewhere_else, "-o", "json").stdout)
        assert as_json == {"key": file_key, "source": str((elsewhere / "my-data" / "api-keys.json").resolve())}

        monkeypatch.chdir(somewhere_else)
        with ComputePlaneClient(server.url.replace("127.0.0.1", "localhost")) as client:  # no key given
            assert client.list_clusters() == []

        registry = state_dir() / "servers.json"
        assert stat.S_IMODE(registry.stat().st_mode) == 0o600
        assert stat.S_IMODE(registry.parent.stat().st_mode) == 0o700
        assert file_key not in registry.read_text()  # paths only

        key_file = elsewhere / "my-data" / "api-keys.json"
        check_that_key_file_edits_apply_without_a_restart(server.api(), key_file)
    finally:
        server.stop()
    assert str(server.url.rsplit(":", 1)[1]) not in json.loads((state_dir() / "servers.json").read_text())


def test_keys_show_without_a_server_fails_with_exit_2_and_prints_no_key(tmp_path: Path) -> None:
    shown = keys_show(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert shown.returncode == 2
    assert shown.stdout == ""
    assert "no API key found for" in shown.stderr and "is `computeplane serve` running" in shown.stderr
    remote = keys_show("https://cp.example.com", tmp_path, "-o", "json")
    assert remote.returncode == 2 and remote.stdout == ""
    assert json.loads(remote.stderr)["error"]["code"] == "NoApiKeyFound"


def check_that_key_file_edits_apply_without_a_restart(api: str, key_file: Path) -> None:
    """A key added, then revoked, in the file of a running server; a half-written file keeps the keys read last."""
    document = json.loads(key_file.read_text())

    def status_with(key: str) -> int:
        return httpx.get(f"{api}/clusters", headers={"x-functions-key": key}).status_code

    assert status_with("team-key-1234") == 401
    document["keys"].append({"name": "team", "key": "team-key-1234", "workspaces": ["default"]})
    key_file.write_text(json.dumps(document))
    wait_for(lambda: status_with("team-key-1234") == 200, timeout=10, what="the new key to be accepted")
    document["keys"].pop()
    key_file.write_text(json.dumps(document))
    wait_for(lambda: status_with("team-key-1234") == 401, timeout=10, what="the revoked key to be refused")
    key_file.write_text('{"keys": [')
    assert status_with(document["keys"][0]["key"]) == 200


def test_a_second_server_on_a_taken_port_does_not_take_over_the_record(tmp_path: Path) -> None:
    first = start_server(tmp_path / "first")
    try:
        port = first.url.rsplit(":", 1)[1]
        env = {k: v for k, v in os.environ.items() if k != "COMPUTEPLANE_DATA_DIR"}
        second = subprocess.run([*console_script(), "serve", "--port", port, "--data-dir", str(tmp_path / "second")],
                                env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode != 0  # the port is taken
        recorded = json.loads((state_dir() / "servers.json").read_text())[port]
        assert recorded["data_dir"] == str((tmp_path / "first").resolve())
    finally:
        first.stop()
