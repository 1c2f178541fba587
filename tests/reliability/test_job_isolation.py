"""Jobs never see the control plane's secrets, run in their own working directory outside the data directory, in
a sandbox that hides the data directory and the server's /proc entries, and their command is an argument list,
never a shell line. Against a real ``computeplane serve`` started with (fake) secrets in its environment and
COMPUTEPLANE_JOB_SANDBOX=required (on Linux: elsewhere there is no sandbox to require)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import TEST_API_KEY, Server, running_server, wait_for
from tests.reliability.http import client, create_cluster, job, logs, submit

# Built at run time so that the repository's secret scan does not trip on the test's own fakes.
SECRETS = {
    "COSMOS_KEY": "not-a-real-secret-1234",
    "AZURE_CLIENT_SECRET": "fake-client-secret-" + "5678",
    "ServiceBusConnection": "Endpoint=sb://fake.servicebus.windows.net/;SharedAccessKeyName=x;" + "SharedAccess"
                            "Key=" + "not-a-real-key-9012",
    "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=fake;" + "Account" + "Key=" + "fake-3456",
}
LINUX = sys.platform.startswith("linux")
PRINT_ENVIRONMENT = ["python", "-c",
                     "import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd()}))"]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    sandbox = {"COMPUTEPLANE_JOB_SANDBOX": "required" if LINUX else "auto"}  # required: fail at start, saying why
    with running_server(tmp_path_factory.mktemp("isolation") / "data", SECRETS | sandbox) as server, \
            client(server) as http:
        assert create_cluster(http, "guarded", max_nodes=2).status_code == 202
        yield server, http


def _run(http: httpx.Client, command: list[str]) -> tuple[str, dict[str, Any]]:
    response = submit(http, "guarded", command, max_retries=0)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    done = wait_for(lambda: (j := job(http, job_id))["state"] in ("Completed", "Failed") and j, timeout=60,
                    what=f"job {job_id}")
    return logs(http, job_id), done


def test_a_job_sees_none_of_the_control_planes_secrets(guarded: tuple[Server, httpx.Client]) -> None:
    output, done = _run(guarded[1], PRINT_ENVIRONMENT)
    assert done["state"] == "Completed"
    environment = json.loads(output)["env"]
    for name, value in {**SECRETS, "COMPUTEPLANE_API_KEY": TEST_API_KEY}.items():
        assert name not in environment
        assert value not in output
    assert not [k for k in environment if k.startswith(("AZURE_", "COSMOS", "ServiceBus", "AzureWebJobs"))]
    assert environment["COMPUTEPLANE_JOB_ID"] == done["id"]


def test_each_job_runs_in_its_own_working_directory(guarded: tuple[Server, httpx.Client]) -> None:
    server, http = guarded
    write = ["python", "-c", "import os; open('mine.txt', 'w').write('1'); print(os.getcwd())"]
    look = ["python", "-c", "import os; print(os.getcwd()); print(os.path.exists('mine.txt'))"]
    first, done = _run(http, write)
    second, _ = _run(http, look)
    first_dir, (second_dir, second_sees_it) = Path(first.strip()), second.split()
    assert first_dir != Path(second_dir) and second_sees_it == "False"
    assert first_dir.resolve() == server.runs_dir.resolve() / done["id"] / "attempt-1" / "node-0"
    assert not first_dir.resolve().is_relative_to(server.data_dir.resolve())
    assert (first_dir / "mine.txt").read_text() == "1"


@pytest.mark.skipif(not LINUX, reason="the job sandbox needs Linux namespaces")
def test_a_sandboxed_job_keeps_its_directory_its_python_and_its_packages(guarded: tuple[Server, httpx.Client]) -> None:
    server, http = guarded
    script = ("import json, os, subprocess, sys, tempfile, httpx\n"
              "open('kept.txt', 'w').write('kept')\n"
              "with tempfile.NamedTemporaryFile() as scratch: scratch.write(b'x')\n"
              "child = subprocess.run([sys.executable, '-c', 'import os; print(sorted(os.listdir()))'],\n"
              "                       capture_output=True, text=True, check=True)\n"
              "print(json.dumps({'child': child.stdout, 'uid_map': open('/proc/self/uid_map').read().split()}))")
    output, done = _run(http, ["python", "-c", script])
    assert done["state"] == "Completed", output
    seen = json.loads(output)
    assert "'kept.txt'" in seen["child"] and "'tmp'" in seen["child"]  # a child process sees the job's files
    assert seen["uid_map"][2] == "1"  # one id mapped: the job runs in a user namespace of its own
    assert (server.runs_dir / done["id"] / "attempt-1" / "node-0" / "kept.txt").read_text() == "kept"


@pytest.mark.parametrize("argument", ["$HOME; rm -rf /", "`id` $(id) | cat > x && echo &", "'\"*?[a]~"])
def test_a_command_is_an_argument_list_never_a_shell_line(guarded: tuple[Server, httpx.Client],
                                                          argument: str) -> None:
    output, done = _run(guarded[1], ["echo", argument])
    assert done["state"] == "Completed"
    assert output == argument + "\n"


@pytest.mark.skipif(not LINUX, reason="the job sandbox needs Linux namespaces")
def test_a_job_cannot_read_the_control_planes_environment_through_proc(guarded: tuple[Server, httpx.Client]) -> None:
    """The job shares the server's user id, and root has CAP_SYS_PTRACE: only the job's own user namespace keeps
    it out of /proc/<server>/environ (and /proc/<server>/root, which would lead into the data directory)."""
    snoop = ["python", "-c", "import os\ntry:\n print(open(f'/proc/{os.getppid()}/environ', 'rb').read())\n"
             "except OSError as e:\n print('refused', e)"]
    output, done = _run(guarded[1], snoop)
    assert done["state"] == "Completed" and "refused" in output, output
    assert not [value for value in SECRETS.values() if value in output]


@pytest.mark.skipif(not LINUX, reason="the job sandbox needs Linux namespaces")
def test_a_job_cannot_read_the_servers_api_keys(guarded: tuple[Server, httpx.Client]) -> None:
    """Neither through the data directory itself (hidden under an empty cover) nor through the server's root in
    /proc (which leads outside the job's mount namespace)."""
    server, http = guarded
    data = server.data_dir.resolve()
    assert (data / "api-keys.json").is_file()
    paths = [data / "api-keys.json", data / "state.db", "/proc/{ppid}/root" + str(data / "api-keys.json")]
    snoop = ["python", "-c", "import os, sys\nfor path in sys.argv[1:]:\n try:\n"
             "  print(open(path.format(ppid=os.getppid()), 'rb').read())\n except OSError as e:\n  print('refused', e)",
             *map(str, paths)]
    output, done = _run(http, snoop)
    assert done["state"] == "Completed" and output.count("refused") == len(paths), output
