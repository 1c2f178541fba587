"""CloudEvents (spec 1.0, structured JSON) that carry commands and observations between systems.

``subject`` is ``workspaces/{workspace}/clusters/{cluster}``; ``data`` is the same JSON body the HTTP API takes;
``id`` is the idempotency key.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from shared.domain.errors import InvalidEvent
from shared.domain.job import Job
from shared.domain.requests import (
    ClusterCreate,
    IdentityAssignment,
    IdentityRemoval,
    JobFinished,
    JobRef,
    JobSubmit,
    NodeRef,
    ScaleSettingsUpdate,
    UnreadBody,
    WakeUp,
)
from shared.domain.utc import UtcDatetime

CLUSTER_EVENTS = "cluster-events"
JOB_EVENTS = "job-events"
SCALE_EVENTS = "scale-events"

CLUSTER_CREATE = "computeplane.cluster.create"
CLUSTER_UPDATE = "computeplane.cluster.update"
CLUSTER_DELETE = "computeplane.cluster.delete"
CLUSTER_IDENTITY_ADD = "computeplane.cluster.identity.add"
CLUSTER_IDENTITY_REMOVE = "computeplane.cluster.identity.remove"
JOB_SUBMIT = "computeplane.job.submit"
JOB_CANCEL = "computeplane.job.cancel"
JOB_FINISHED = "computeplane.job.finished"
SCALE_REQUEST = "computeplane.scale.request"
NODE_READY = "computeplane.node.ready"
NODE_PREEMPTED = "computeplane.node.preempted"
NODE_FAILED = "computeplane.node.failed"



@dataclass(frozen=True)
class EventKind:
    """What an event type means: the queue it travels on, the model of its ``data`` and one line for people.
    The handler layer binds exactly one handler to each kind (``shared.handlers.registry``)."""

    event_type: str
    queue: str
    body: type[BaseModel]
    meaning: str


EVENT_KINDS: dict[str, EventKind] = {kind.event_type: kind for kind in (
    EventKind(CLUSTER_CREATE, CLUSTER_EVENTS, ClusterCreate, "create a cluster (get-or-create)"),
    EventKind(CLUSTER_UPDATE, CLUSTER_EVENTS, ScaleSettingsUpdate, "change a cluster's scale settings"),
    EventKind(CLUSTER_DELETE, CLUSTER_EVENTS, UnreadBody, "delete a cluster (its nodes are released first)"),
    EventKind(CLUSTER_IDENTITY_ADD, CLUSTER_EVENTS, IdentityAssignment, "assign managed identities"),
    EventKind(CLUSTER_IDENTITY_REMOVE, CLUSTER_EVENTS, IdentityRemoval, "remove managed identities"),
    EventKind(JOB_SUBMIT, JOB_EVENTS, JobSubmit, "submit a job"),
    EventKind(JOB_CANCEL, JOB_EVENTS, JobRef, "cancel a job"),
    EventKind(JOB_FINISHED, JOB_EVENTS, JobFinished, "a job's attempt finished (the provider's view is the truth)"),
    EventKind(SCALE_REQUEST, SCALE_EVENTS, WakeUp, "reconcile the cluster now"),
    EventKind(NODE_READY, SCALE_EVENTS, NodeRef, "a node is ready"),
    EventKind(NODE_PREEMPTED, SCALE_EVENTS, NodeRef, "a low-priority node was preempted"),
    EventKind(NODE_FAILED, SCALE_EVENTS, NodeRef, "a node failed"),
)}
QUEUE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(kind.queue for kind in EVENT_KINDS.values()))

SOURCE = "/computeplane"
_SUBJECT = re.compile(r"^workspaces/(?P<workspace>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/clusters/(?P<cluster>[^/]{1,64})$")


class CloudEvent(BaseModel):
    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=512)
    type: str
    subject: str
    time: UtcDatetime | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any] = Field(default_factory=dict)
    # The CloudEvents distributed-tracing extension: the W3C trace context of the action that caused this event.
    traceparent: str | None = Field(default=None, max_length=128)
    tracestate: str | None = Field(default=None, max_length=512)

    @property
    def queue(self) -> str:
        return EVENT_KINDS[self.type].queue

    @property
    def workspace(self) -> str:
        return _subject_parts(self.subject)[0]

    @property
    def cluster(self) -> str:
        return _subject_parts(self.subject)[1]

    @property
    def session_id(self) -> str:
        """Messages of one cluster share a session so Service Bus keeps them in order."""
        return f"{self.workspace}/{self.cluster}"

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


def subject_for(workspace: str, cluster: str) -> str:
    return f"workspaces/{workspace}/clusters/{cluster}"


@functools.lru_cache(maxsize=4096)  # asked for several times per event, and a cluster's subjects repeat
def _subject_parts(subject: str) -> tuple[str, str]:
    match = _SUBJECT.match(subject)
    if match is None:
        raise InvalidEvent(f"subject: must be 'workspaces/{{workspace}}/clusters/{{cluster}}', got {subject[:100]!r}")
    return match["workspace"], match["cluster"]


def new_event(event_type: str, workspace: str, cluster: str, data: dict[str, Any], event_id: str,
              time: datetime | None = None) -> CloudEvent:
    return CloudEvent(specversion="1.0", id=event_id, source=SOURCE, type=event_type,
                      subject=subject_for(workspace, cluster), time=time, data=data)


def submit_event(job: Job) -> CloudEvent:
    """The submit event of a recorded job: published by the HTTP submit, and again by the sweep when it was lost
    (the same id, so the broker and the handler drop a copy)."""
    return new_event(JOB_SUBMIT, job.workspace, job.cluster, {"job_id": job.id, **job.spec.model_dump(mode="json")},
                     event_id=f"submit-{job.id}", time=job.submitted_at)


def parse_cloud_event(body: bytes | str) -> CloudEvent:
    """Decode and check an event; anything that can never be applied raises ``InvalidEvent`` with the reason.
    The transport's size limit is checked by the caller (``shared.handlers.registry.decode_event``)."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        payload = json.loads(raw)
        json.dumps(payload, ensure_ascii=False).encode()  # lone surrogates ("\ud800") are not text we can keep
    except (UnicodeError, ValueError) as exc:
        raise InvalidEvent(f"body is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise InvalidEvent("body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidEvent("body must be a JSON object (a structured-mode CloudEvent)")
    try:
        event = CloudEvent.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvent 1.0: {describe_validation_error(exc)}") from None
    if event.type not in EVENT_KINDS:
        raise InvalidEvent(f"type: unknown event type {event.type[:100]!r}; known: {', '.join(sorted(EVENT_KINDS))}")
    _subject_parts(event.subject)
    return event


def describe_validation_error(exc: ValidationError) -> str:
    """'field: rule' for each problem, as users read them."""
    parts = []
    for err in exc.errors()[:10]:
        location = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)
