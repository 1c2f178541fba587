"""Jobs that bring their own code, end to end on ``computeplane serve``: the client and the CLI snapshot a project,
upload it once, and every node of the job runs in its own unpacked copy; hostile archives never reach a node."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from computeplane.cli import app
from computeplane.client import ComputePlaneClient
from computeplane.snapshot_archive import digest_of
from tests.e2e.server import Server, http, wait_for
from tests.e2e.test_lifecycle import create_cluster, finished


@pytest.fixture(scope="module")
def server(shared_server: Server) -> Server:
    """One server for the module (each test has its own cluster and project)."""
    return shared_server

TRAIN = """\
import os, json
from trainer.model import describe
from trainer import config
rank = os.environ["COMPUTEPLANE_NODE_RANK"]
with open("result.json", "w") as out:   # each node writes into its own copy
    json.dump({"rank": rank, "model": describe(), "lr": config.LEARNING_RATE}, out)
print(f"node {rank}: {describe()} lr={config.LEARNING_RATE} data={os.path.exists('data')}")
"""


def project(root: Path) -> Path:
    files = {"train.py": TRAIN, "trainer/__init__.py": "", "trainer/model.py": "def describe():\n    return 'mlp-2x'\n",
             "trainer/config.py": "LEARNING_RATE = 0.01\n", ".amlignore": "data/\n", "data/huge.bin": "x" * 1000}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_two_node_job_runs_a_multi_file_project_that_imports_its_own_modules(server: Server,
                                                                               tmp_path: Path) -> None:
    assert create_cluster(server, "codecluster", max_nodes=2).status_code == 202
    code = project(tmp_path / "project")
    with ComputePlaneClient(server.url) as client:
        job = client.submit_job("codecluster", ["python", "train.py"], node_count=2, code=code)
        digest = job["code"]
        assert len(digest) == 64
        done = wait_for(lambda: finished(server, job["id"]), timeout=90, what="the job to finish")
        assert done["state"] == "Completed", (done, client.job_logs(job["id"]))
        logs = client.job_logs(job["id"])["logs"]
        assert "node 0: mlp-2x lr=0.01 data=False" in logs and "node 1: mlp-2x lr=0.01 data=False" in logs
        results = [json.loads((server.runs_dir / job["id"] / "attempt-1" / f"node-{rank}" / "result.json")
                              .read_text()) for rank in (0, 1)]
        assert [r["rank"] for r in results] == ["0", "1"]
        assert not (code / "result.json").exists()  # the project itself is never touched

        # The same project again: the same snapshot, not uploaded a second time (stored once per content hash).
        stored = server.data_dir / "snapshots" / "default" / f"{digest}.tar.gz"
        before = (sorted((server.data_dir / "snapshots").rglob("*")), stored.stat().st_mtime_ns)
        again = client.submit_job("codecluster", ["python", "-c", "import trainer.model as m; print(m.describe())"],
                                  code=code)
        assert again["code"] == digest
        assert (sorted((server.data_dir / "snapshots").rglob("*")), stored.stat().st_mtime_ns) == before
        wait_for(lambda: finished(server, again["id"]), timeout=60, what="the second job")
        assert client.job_logs(again["id"])["logs"] == "mlp-2x\n"


def test_the_cli_sends_a_directory_with_code_and_refuses_a_link_leading_out_of_it(server: Server,
                                                                                 tmp_path: Path) -> None:
    assert create_cluster(server, "clicode", max_nodes=1).status_code == 202
    code = project(tmp_path / "project")
    runner = CliRunner()
    result = runner.invoke(app, ["--endpoint", server.url, "job", "submit", "-c", "clicode", "--code", str(code),
                                 "--wait", "--", "python", "train.py"])
    assert result.exit_code == 0, result.output
    assert "node 0: mlp-2x lr=0.01" in result.stdout

    (tmp_path / "secret.txt").write_text("s")
    (code / "secret.txt").symlink_to(tmp_path / "secret.txt")
    result = runner.invoke(app, ["--endpoint", server.url, "job", "submit", "-c", "clicode", "--code", str(code),
                                 "--", "python", "train.py"])
    assert result.exit_code == 2
    assert "secret.txt: the link points outside" in result.output


def evil_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return buffer.getvalue()


def test_hostile_uploads_and_unknown_snapshots_are_refused_naming_the_rule(server: Server) -> None:
    archive = evil_archive()
    digest = digest_of(archive)
    answer = http.put(f"{server.api()}/snapshots/{digest}", content=archive,
                      headers={"content-type": "application/octet-stream"})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == [
        {"field": "code", "rule": "../../escaped.py: '..' is not allowed in a snapshot (the path would escape its "
                                  "directory)"}]
    assert http.get(f"{server.api()}/snapshots/{digest}").status_code == 404

    answer = http.put(f"{server.api()}/snapshots/{'0' * 64}", content=archive)
    assert answer.status_code == 422 and answer.json()["error"]["details"][0]["field"] == "digest"

    too_big = httpx.put(f"{server.api()}/snapshots/{'0' * 64}", content=b"\0" * (33 * 1024 * 1024),
                        headers={"x-functions-key": http.headers["x-functions-key"]}, timeout=60)
    assert too_big.status_code == 413

    assert create_cluster(server, "nocode", max_nodes=1).status_code == 202
    answer = http.post(f"{server.api()}/clusters/nocode/jobs", json={"command": ["python", "x.py"], "code": digest})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "code"
    assert "upload it first" in answer.json()["error"]["message"]


def test_a_hostile_archive_that_reached_the_store_is_still_refused_by_the_node(server: Server) -> None:
    """The node never trusts the store: an archive put there behind the API's back fails the job, unpacked nowhere."""
    archive = evil_archive()
    digest = digest_of(archive)
    stored = server.data_dir / "snapshots" / "default" / f"{digest}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(archive)
    assert create_cluster(server, "evilcode", max_nodes=1).status_code == 202
    answer = http.post(f"{server.api()}/clusters/evilcode/jobs", json={"command": ["python", "x.py"], "code": digest})
    assert answer.status_code == 202, answer.text
    done = wait_for(lambda: finished(server, answer.json()["id"]), timeout=60, what="the job to fail")
    assert done["state"] == "Failed"
    logs = http.get(f"{server.api()}/jobs/{done['id']}/logs").json()["logs"]
    assert "cannot unpack code snapshot" in logs and "'..' is not allowed" in logs
    assert not list(server.runs_dir.parent.rglob("escaped.py"))


def test_v1_script_run_config_runs_the_source_directory_on_every_node(server: Server, tmp_path: Path) -> None:
    from computeplane.azureml import Workspace
    from computeplane.azureml.core import Experiment, ScriptRunConfig
    from computeplane.azureml.core.compute import ComputeTarget
    from computeplane.azureml.core.runconfig import PyTorchConfiguration

    assert create_cluster(server, "vonecode", max_nodes=2).status_code == 202
    code = project(tmp_path / "project")
    (code / "args.py").write_text("import sys, os; print('args', sys.argv[1:], os.environ['STAGE'])\n")
    ws = Workspace(endpoint=server.url, name="default")
    cluster = ComputeTarget(workspace=ws, name="vonecode")
    config = ScriptRunConfig(source_directory=str(code), script="args.py", arguments=["--lr", 0.5],
                             compute_target=cluster, distributed_job_config=PyTorchConfiguration(node_count=2))
    config.run_config.environment_variables = {"STAGE": "dev"}
    run = Experiment(ws, "snapshots").submit(config)
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed" and run.get_status() == "Completed"
    assert run.get_logs().count("args ['--lr', '0.5'] dev") == 2  # both nodes
