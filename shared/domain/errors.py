"""Error kinds, as kopf names them: a ``PermanentError`` can never pass by trying again; a ``TemporaryError`` may
(after its ``delay``, when it knows one). Domain errors are permanent and named for what the caller did.

They carry no transport: the API maps them to HTTP (``shared.api.errors``, ``shared.api.arm.errors``), the trigger
layer to dead-letter or redelivery (``shared.handlers.messages``, ``shared.local.host``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

T = TypeVar("T")


class PermanentError(Exception):
    """Retrying cannot help: a request is refused, an event is dead-lettered at once with this reason."""


class TemporaryError(Exception):
    """May pass if tried again, after ``delay`` when the error knows how long (None: the transport's own backoff)."""

    def __init__(self, message: str, delay: timedelta | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class DomainError(PermanentError):
    """Base of every error a user can cause. ``code`` is the stable, AmlCompute-like error code."""

    code = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidField(DomainError):
    """A field broke a rule. Always names the field and the rule."""

    code = "InvalidField"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class SimulationOnly(DomainError):
    """A control only a simulated cloud has (preempt a node, set a lock), asked of a runtime with real nodes."""

    code = "NotSupportedByNodeProvider"


class InvalidFields(InvalidField):
    """Several fields broke rules: all of them are reported at once (``field``/``rule`` are the first's)."""

    def __init__(self, errors: list[InvalidField]) -> None:
        super().__init__(errors[0].field, errors[0].rule)
        self.errors = errors
        self.message = "; ".join(e.message for e in errors)
        self.args = (self.message,)


class FieldErrors:
    """Runs rules one after another and keeps every ``InvalidField`` they raise, to report them together."""

    def __init__(self) -> None:
        self.errors: list[InvalidField] = []

    def check(self, rule: Callable[..., T], *args: object, default: T) -> T:
        try:
            return rule(*args)
        except InvalidFields as several:
            self.errors.extend(several.errors)
        except InvalidField as error:
            self.errors.append(error)
        return default

    def raise_if_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise InvalidFields(self.errors)


class InvalidEvent(DomainError):
    """An event that can never be applied: it goes to the dead-letter queue at once, with this reason."""

    code = "InvalidEvent"


class ComputeTargetNotFound(DomainError):
    code = "ComputeTargetNotFound"


class JobNotFound(DomainError):
    code = "JobNotFound"


class ClusterSpecConflict(DomainError):
    """A create for an existing name with a different spec (AmlCompute would silently keep the old one)."""

    code = "ComputeTargetSpecConflict"

    def __init__(self, name: str, differing: dict[str, tuple[object, object]]) -> None:
        fields = ", ".join(sorted(differing))
        super().__init__(f"cluster '{name}' already exists with a different spec; differing fields: {fields}")
        self.differing = differing


class OperationNotAllowed(DomainError):
    """The request is well formed but the current state forbids it (deleting cluster, finished job, ...)."""

    code = "OperationNotAllowed"


class IdempotencyKeyReused(DomainError):
    """A submit repeated with the same Idempotency-Key but another request: the key names the first one only."""

    code = "IdempotencyKeyReused"


class JobExceedsQuota(DomainError):
    """A job that can never fit the cluster or the quota, rejected at submit. ``field`` names what to change.
    Not the cluster's ``ClusterErrorCode.QUOTA_EXCEEDED`` condition, which says that a job waits for quota."""

    code = "JobNodeCountExceedsCoreQuota"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TransientError(TemporaryError):
    """Something outside the domain failed in a way that may pass (429, 503, timeout, lost race).
    The message is redelivered; after maxDeliveryCount it is dead-lettered."""


class ConcurrencyConflict(TransientError):
    """A conditional write lost a race (etag / version mismatch): retry with fresh state."""


class ClusterStillDeleting(TemporaryError):
    """A create for a name whose previous cluster is still releasing its nodes. Redelivered until the name is free
    (as the HTTP API answers 409 until then); dead-lettered with this reason if it never is. No delay of its own:
    the transport's growing backoff already spans the minutes a release can take."""

    def __init__(self, workspace: str, cluster: str) -> None:
        super().__init__(f"cluster {workspace}/{cluster} is still being deleted; the create is retried until it is "
                         f"gone")


def reason_of(error: PermanentError) -> str:
    """Why an error can never pass, as a user reads it: ``code: message`` (an invalid event's message says it all)."""
    if isinstance(error, InvalidEvent):
        return error.message
    if isinstance(error, DomainError):
        return f"{error.code}: {error.message}"
    return str(error)
