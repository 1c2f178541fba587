"""The one event registry: every type a user may send is handled, routed to its queue, and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from function_app import app
from shared.domain.errors import InvalidEvent
from shared.domain.events import EVENT_KINDS, QUEUE_NAMES, new_event
from shared.handlers import registry
from shared.handlers.events import HANDLERS

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_kind_has_exactly_one_handler() -> None:
    assert set(registry.ROUTES) == set(EVENT_KINDS) == set(HANDLERS)


def test_binding_refuses_a_kind_without_a_handler() -> None:
    # A type added to the domain's kinds only would be accepted by POST /api/events, then dead-lettered.
    with pytest.raises(RuntimeError, match=re.escape("without a handler: ['computeplane.job.submit']")):
        registry._bind(EVENT_KINDS, {t: h for t, h in HANDLERS.items() if t != "computeplane.job.submit"})


def test_the_design_table_is_the_registry() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    found = re.search(r"<!-- event-table: begin -->\n(.*?)\n<!-- event-table: end -->", design, re.S)
    assert found is not None, "docs/design.md lost its event table markers"
    assert found.group(1) == registry.design_table(), "run `python -m shared.handlers.registry` and paste the table"


def test_a_queue_trigger_for_every_queue_of_the_registry() -> None:
    app.functions_bindings = None  # the host indexes once per process; index again here
    queues = sorted(fn.get_trigger().get_dict_repr()["queueName"] for fn in app.get_functions()
                    if fn.get_trigger().get_dict_repr()["type"] == "serviceBusTrigger")
    assert queues == sorted(QUEUE_NAMES) == sorted({route.queue for route in registry.ROUTES.values()})


def test_a_body_that_breaks_its_kind_s_model_names_the_field() -> None:
    event = new_event("computeplane.job.cancel", "ws", "c1", {"job_id": ""}, event_id="e1")
    with pytest.raises(InvalidEvent, match=re.escape("data of computeplane.job.cancel: job_id")):
        registry.event_body(event)


def test_an_event_over_the_bus_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InvalidEvent, match=f"limit is {registry.MAX_EVENT_BYTES}"):
        registry.decode_event(b" " * (registry.MAX_EVENT_BYTES + 1))
