"""Every route but health needs a key; a key limited to workspaces never sees another workspace."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from tests.e2e.server import Server, http, running_server


def test_requests_without_a_valid_key_are_refused_but_health_is_open(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/health").status_code == 200
    missing = httpx.get(f"{server.api()}/clusters")
    assert missing.status_code == 401 and "x-functions-key" in missing.json()["error"]["message"]
    wrong = httpx.get(f"{server.api()}/clusters", headers={"x-functions-key": "guess"})
    assert wrong.status_code == 401
    assert http.get(f"{server.api()}/clusters").status_code == 200


def test_the_key_created_at_first_start_is_private_and_works_as_a_header_or_code(server: Server) -> None:
    key_file = server.data_dir / "api-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = json.loads(key_file.read_text())["keys"][0]["key"]
    assert httpx.get(f"{server.api()}/clusters", headers={"x-functions-key": key}).status_code == 200
    assert httpx.get(f"{server.api()}/clusters", params={"code": key}).status_code == 200
    assert "api-keys.json" in server.log()


def test_a_key_limited_to_a_workspace_cannot_see_or_touch_another(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    keys = {"keys": [{"name": "team-a", "key": "team-a-key", "workspaces": ["team-a"]}]}
    (data / "api-keys.json").write_text(json.dumps(keys))
    with running_server(data) as server:
        spec = {"name": "secret", "vm_size": "STANDARD_D2_V2", "max_nodes": 1}
        assert http.post(f"{server.api('team-b')}/clusters", json=spec).status_code == 202
        team_a = {"x-functions-key": "team-a-key"}
        assert httpx.get(f"{server.api('team-a')}/clusters", headers=team_a).json() == []
        other = httpx.get(f"{server.api('team-b')}/clusters/secret", headers=team_a)
        assert other.status_code == 403 and "secret" not in other.text
        assert httpx.post(f"{server.url}/api/locks", json={"name": "x"}, headers=team_a).status_code == 403
