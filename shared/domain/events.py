"""CloudEvents (spec 1.0, structured JSON) that carry commands and observations between systems.

``subject`` is ``workspaces/{workspace}/clusters/{cluster}``; ``data`` is the same JSON body the HTTP API takes;
``id`` is the idempotency key.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from shared.domain.clock import UtcDatetime
from shared.domain.errors import InvalidEvent

CLUSTER_EVENTS = "cluster-events"
JOB_EVENTS = "job-events"
SCALE_EVENTS = "scale-events"
QUEUE_NAMES = (CLUSTER_EVENTS, JOB_EVENTS, SCALE_EVENTS)

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

QUEUE_OF_TYPE: dict[str, str] = {
    CLUSTER_CREATE: CLUSTER_EVENTS,
    CLUSTER_UPDATE: CLUSTER_EVENTS,
    CLUSTER_DELETE: CLUSTER_EVENTS,
    CLUSTER_IDENTITY_ADD: CLUSTER_EVENTS,
    CLUSTER_IDENTITY_REMOVE: CLUSTER_EVENTS,
    JOB_SUBMIT: JOB_EVENTS,
    JOB_CANCEL: JOB_EVENTS,
    JOB_FINISHED: JOB_EVENTS,
    SCALE_REQUEST: SCALE_EVENTS,
    NODE_READY: SCALE_EVENTS,
    NODE_PREEMPTED: SCALE_EVENTS,
    NODE_FAILED: SCALE_EVENTS,
}

SOURCE = "/computeplane"
MAX_EVENT_BYTES = 256 * 1024  # Service Bus standard tier message size
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
        return QUEUE_OF_TYPE[self.type]

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


def _subject_parts(subject: str) -> tuple[str, str]:
    match = _SUBJECT.match(subject)
    if match is None:
        raise InvalidEvent(f"subject: must be 'workspaces/{{workspace}}/clusters/{{cluster}}', got {subject[:100]!r}")
    return match["workspace"], match["cluster"]


def new_event(event_type: str, workspace: str, cluster: str, data: dict[str, Any], event_id: str,
              time: datetime | None = None) -> CloudEvent:
    return CloudEvent(specversion="1.0", id=event_id, source=SOURCE, type=event_type,
                      subject=subject_for(workspace, cluster), time=time, data=data)


def parse_cloud_event(body: bytes | str) -> CloudEvent:
    """Decode and check an event; anything that can never be applied raises ``InvalidEvent`` with the reason."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"event body is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES} (Service Bus message size)")
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
    if event.type not in QUEUE_OF_TYPE:
        raise InvalidEvent(f"type: unknown event type {event.type[:100]!r}; known: {', '.join(sorted(QUEUE_OF_TYPE))}")
    _subject_parts(event.subject)
    return event


def describe_validation_error(exc: ValidationError) -> str:
    """'field: rule' for each problem, as users read them."""
    parts = []
    for err in exc.errors()[:10]:
        location = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)
