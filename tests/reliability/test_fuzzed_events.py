"""Fuzzed CloudEvents on each queue: wrong types, missing fields, huge or deeply nested bodies, unknown event types,
bad UTF-8, more than 256 KB. Each is dead-lettered at once with a reason and its original body, the handler never
raises, the pump keeps running, and nothing stored changes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bootstrap import Container, build
from shared.config import Settings
from shared.domain import events as ev
from shared.domain.events import new_event
from shared.handlers.messages import handle_message
from shared.local.host import LocalFunctionsHost, QueueFunction
from shared.ports import MAX_EVENT_BYTES
from tests.fakes.clock import FakeClock

SUBJECT = "workspaces/ws/clusters/alpha"
FIXED_EXAMPLES = not os.environ.get("COMPUTEPLANE_PROPERTY_RANDOM")  # set it to explore new inputs
REQUIRED = ("specversion", "id", "source", "type", "subject")
# Data each known type can never accept (a type or a shape its body model refuses).
INVALID_DATA: dict[str, list[Any]] = {
    ev.CLUSTER_CREATE: [{"name": "alpha", "max_nodes": "many", "vm_size": "STANDARD_D2_V2"}, {"name": "alpha"}],
    ev.CLUSTER_UPDATE: [{"max_nodes": "two"}, {"min_nodes": [1]}],
    ev.CLUSTER_DELETE: [],
    ev.JOB_SUBMIT: [{"command": 5}, {"command": ["true"], "node_count": "x"}, {"command": ["true"], "nope": 1}],
    ev.JOB_CANCEL: [{}, {"job_id": ""}, {"job_id": 7}],
    ev.JOB_FINISHED: [{"job_id": "j", "attempt": 0, "exit_code": 0}, {"job_id": "j"}],
    ev.SCALE_REQUEST: [{"reason": {"a": 1}}],
    ev.NODE_READY: [{}, {"node_id": ""}],
    ev.NODE_PREEMPTED: [{"node_id": 3}],
    ev.NODE_FAILED: [{"node_id": None}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=20),  # lone surrogates have their own test below
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15)


def _envelope(event_type: str, data: Any = None) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "fuzz-1", "source": "/fuzz", "type": event_type, "subject": SUBJECT,
            "data": {} if data is None else data}


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()


@st.composite
def _missing_field(draw: st.DrawFn) -> bytes:
    """Without id, source, type or subject (a missing specversion is a separate, known case below)."""
    document = _envelope(draw(st.sampled_from(sorted(ev.EVENT_KINDS))))
    gone = draw(st.lists(st.sampled_from(REQUIRED[1:]), min_size=1, unique=True))
    for field in gone + draw(st.lists(st.just("specversion"), max_size=1)):
        del document[field]
    return _encode(document)


@st.composite
def _wrong_type(draw: st.DrawFn) -> bytes:
    document = _envelope(draw(st.sampled_from(sorted(ev.EVENT_KINDS))))
    field = draw(st.sampled_from([*REQUIRED, "data", "time"]))
    wrong = draw(json_values.filter(lambda v: not isinstance(v, str) or field in ("specversion", "time", "subject")))
    if (field == "specversion" and wrong == "1.0") or (field == "data" and isinstance(wrong, dict)):
        wrong = 1.5
    document[field] = wrong
    return _encode(document)


@st.composite
def _invalid_data(draw: st.DrawFn) -> bytes:
    event_type = draw(st.sampled_from([t for t, cases in INVALID_DATA.items() if cases]))
    return _encode(_envelope(event_type, draw(st.sampled_from(INVALID_DATA[event_type]))))


unknown_types = st.text(max_size=40).filter(lambda t: t not in ev.EVENT_KINDS).map(lambda t: _encode(_envelope(t)))
bad_subjects = st.sampled_from(["", "clusters/alpha", "workspaces/ws/clusters/", "workspaces/-x/clusters/a",
                                "workspaces/ws/clusters/a/b", "workspaces/" + "w" * 65 + "/clusters/a"]).map(
    lambda s: _encode(_envelope(ev.SCALE_REQUEST) | {"subject": s}))
not_objects = json_values.filter(lambda v: not isinstance(v, dict)).map(_encode)
bad_utf8 = st.binary(max_size=200).map(lambda b: b'{"id": "\xff\xfe' + b + b'"}')
garbage = st.binary(max_size=300)
too_big = st.integers(MAX_EVENT_BYTES - 100, MAX_EVENT_BYTES + 44 * 1024).map(
    lambda n: _encode(_envelope(ev.SCALE_REQUEST, {"reason": "x" * n})))
fuzzed_bodies = st.one_of(_missing_field(), _wrong_type(), _invalid_data(), unknown_types, bad_subjects, not_objects,
                          bad_utf8, garbage, too_big)


def _snapshot(container: Container) -> tuple[list[str], list[str]]:
    store = container.deps.store
    return ([c.model_dump_json() for c in store.list_clusters("ws")],
            [j.model_dump_json() for j in store.list_jobs("ws")])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """A store with one cluster and one job in it, to see that nothing changes."""
    logging.disable(logging.WARNING)
    container = build(Settings(data_dir=tmp_path_factory.mktemp("fuzz")), clock=FakeClock())
    for queue, event in [
        (ev.CLUSTER_EVENTS, new_event(ev.CLUSTER_CREATE, "ws", "alpha", {"name": "alpha", "vm_size": "STANDARD_D2_V2",
                                                                         "max_nodes": 2}, event_id="create-alpha")),
        (ev.JOB_EVENTS, new_event(ev.JOB_SUBMIT, "ws", "alpha", {"job_id": "j", "command": ["true"]}, "submit-j"))]:
        handle_message(queue, event.id, event.to_json(), container.deps)
    yield container
    logging.disable(logging.NOTSET)


@settings(max_examples=400, deadline=None, derandomize=FIXED_EXAMPLES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(queue=st.sampled_from(ev.QUEUE_NAMES), body=fuzzed_bodies)
def test_a_fuzzed_event_is_dead_lettered_at_once_with_a_reason_and_changes_nothing(
        seeded: Container, queue: str, body: bytes) -> None:
    assert seeded.queue is not None
    before, letters = _snapshot(seeded), len(seeded.queue.dead_letters())
    handle_message(queue, "fuzzed", body, seeded.deps)  # must not raise
    new = seeded.queue.dead_letters()[letters:]
    assert len(new) == 1 and new[0].reason and new[0].body == body
    assert _snapshot(seeded) == before


def _trigger(queue: str, container: Container) -> Callable[[func.ServiceBusMessage], None]:
    def call(msg: func.ServiceBusMessage) -> None:
        handle_message(queue, msg.message_id or "", msg.get_body(), container.deps)

    return call


@settings(max_examples=3, deadline=None, derandomize=FIXED_EXAMPLES)
@given(bodies=st.lists(fuzzed_bodies, min_size=30, max_size=30))
def test_the_pump_keeps_running_through_a_burst_of_bad_messages(bodies: list[bytes]) -> None:
    container = build(Settings(data_dir=Path(tempfile.mkdtemp(prefix="computeplane-pump-"))), clock=FakeClock())
    queue = container.queue
    assert queue is not None
    host = LocalFunctionsHost(func.FunctionApp(), queue)
    functions = {q: QueueFunction(q, q, _trigger(q, container)) for q in ev.QUEUE_NAMES}
    for n, body in enumerate(bodies):
        queue.send(ev.QUEUE_NAMES[n % 3], f"bad-{n}", body)
    good = new_event(ev.CLUSTER_CREATE, "ws", "after", {"name": "after", "vm_size": "STANDARD_D2_V2",
                                                        "max_nodes": 1}, event_id="create-after")
    queue.publish(good)
    for name, fn in functions.items():
        while (message := queue.receive(name)) is not None:
            host.deliver(fn, message)
    assert queue.pending() == 0
    letters = queue.dead_letters()
    assert len(letters) == len(bodies) and all(d.reason and d.delivery_count == 0 for d in letters)
    assert container.deps.store.get_cluster("ws", "after") is not None
    shutil.rmtree(container.settings.data_dir, ignore_errors=True)


# --- inputs that break the promise today ---------------------------------------------------------------------------
def _dead_lettered_at_once(tmp_path: Path, queue: str, body: bytes) -> Container:
    container = build(Settings(data_dir=tmp_path), clock=FakeClock())
    assert container.queue is not None
    handle_message(queue, "hostile", body, container.deps)
    [letter] = container.queue.dead_letters()
    assert letter.reason and letter.body == body
    return container


def test_an_event_without_specversion_is_dead_lettered(tmp_path: Path) -> None:
    document = _envelope(ev.SCALE_REQUEST)
    del document["specversion"]
    _dead_lettered_at_once(tmp_path, ev.SCALE_EVENTS, _encode(document))


def test_a_deeply_nested_body_is_dead_lettered_at_once(tmp_path: Path) -> None:
    nested = b'{"specversion":"1.0","id":"deep","source":"/f","type":"computeplane.job.submit","subject":"' + \
        SUBJECT.encode() + b'","data":{"a":' + b"[" * 20000 + b"]" * 20000 + b"}}"
    assert len(nested) < MAX_EVENT_BYTES
    _dead_lettered_at_once(tmp_path, ev.JOB_EVENTS, nested)


@pytest.mark.parametrize("event_type,cluster,data", [
    (ev.JOB_SUBMIT, "alpha", {"job_id": "s1", "command": ["echo", "\ud800"]}),
    (ev.JOB_SUBMIT, "alpha", {"job_id": "s2", "command": ["true"], "environment_variables": {"A": "\udfff"}}),
    (ev.CLUSTER_CREATE, "betaa", {"name": "betaa", "vm_size": "STANDARD_D2_V2", "max_nodes": 2,
                                  "tags": {"a": "\ud800"}}),
    (ev.SCALE_REQUEST, "al\ud800pha", {}),
], ids=["command", "environment", "tags", "subject"])
def test_a_lone_surrogate_in_a_string_is_dead_lettered_at_once(tmp_path: Path, event_type: str, cluster: str,
                                                               data: dict[str, Any]) -> None:
    body = json.dumps({"specversion": "1.0", "id": "sur", "source": "/f", "type": event_type,
                       "subject": f"workspaces/ws/clusters/{cluster}", "data": data}).encode()
    _dead_lettered_at_once(tmp_path, ev.EVENT_KINDS[event_type].queue, body)


def test_an_event_time_in_year_one_does_not_poison_the_workspace(tmp_path: Path) -> None:
    container = build(Settings(data_dir=tmp_path), clock=FakeClock())
    create = new_event(ev.CLUSTER_CREATE, "ws", "alpha", {"name": "alpha", "vm_size": "STANDARD_D2_V2",
                                                          "max_nodes": 2}, event_id="create-alpha")
    handle_message(ev.CLUSTER_EVENTS, create.id, create.to_json(), container.deps)
    body = json.dumps({"specversion": "1.0", "id": "old", "source": "/f", "type": ev.JOB_SUBMIT, "subject": SUBJECT,
                       "time": "0001-01-01T00:00:00Z", "data": {"job_id": "old", "command": ["true"]}}).encode()
    with contextlib.suppress(Exception):  # failing is fine; what must not happen is the damage below
        handle_message(ev.JOB_EVENTS, "old", body, container.deps)
    assert [c.name for c in container.deps.store.list_clusters("ws")] == ["alpha"]


def test_an_absurd_scale_update_is_refused_and_does_not_wedge_the_cluster(tmp_path: Path) -> None:
    from tests.reliability.world import World

    world = World(tmp_path)
    world.create("alpha", max_nodes=2, idle=30)
    world.submit("alpha", "first", seconds=2)
    world.settle(10)
    world.update("alpha", "absurd", idle_seconds_before_scaledown=10**15)
    world.submit("alpha", "second", seconds=2)
    world.settle(60)
    assert [d.message_id for d in world.broker.dead_letters] == ["absurd"]
    assert world.jobs()["second"].state.value == "Completed"

