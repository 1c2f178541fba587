"""Domain errors, named for what the caller did. Each maps to one HTTP status and one CLI exit code
(see ``shared.api.errors``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DomainError(Exception):
    """Base of every error a user can cause. ``code`` is the stable, AmlCompute-like error code."""

    code = "BadRequest"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidField(DomainError):
    """A field broke a rule. Always names the field and the rule."""

    code = "InvalidField"
    status = 422

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule

    def to_body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message,
                          "details": [{"field": self.field, "rule": self.rule}]}}


class SimulationOnly(DomainError):
    """A control only a simulated cloud has (preempt a node, set a lock), asked of a runtime with real nodes."""

    code = "NotSupportedByNodeProvider"
    status = 501


class InvalidFields(InvalidField):
    """Several fields broke rules: all of them are reported at once (``field``/``rule`` are the first's)."""

    def __init__(self, errors: list[InvalidField]) -> None:
        super().__init__(errors[0].field, errors[0].rule)
        self.errors = errors
        self.message = "; ".join(e.message for e in errors)
        self.args = (self.message,)

    def to_body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message,
                          "details": [{"field": e.field, "rule": e.rule} for e in self.errors]}}


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
    status = 404


class JobNotFound(DomainError):
    code = "JobNotFound"
    status = 404


class ClusterSpecConflict(DomainError):
    """A create for an existing name with a different spec (AmlCompute would silently keep the old one)."""

    code = "ComputeTargetSpecConflict"
    status = 409

    def __init__(self, name: str, differing: dict[str, tuple[object, object]]) -> None:
        fields = ", ".join(sorted(differing))
        super().__init__(f"cluster '{name}' already exists with a different spec; differing fields: {fields}")
        self.differing = differing

    def to_body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message,
                          "details": [{"field": f, "existing": old, "requested": new}
                                      for f, (old, new) in sorted(self.differing.items())]}}


class OperationNotAllowed(DomainError):
    """The request is well formed but the current state forbids it (deleting cluster, finished job, ...)."""

    code = "OperationNotAllowed"
    status = 409


class IdempotencyKeyReused(DomainError):
    """A submit repeated with the same Idempotency-Key but another request: the key names the first one only."""

    code = "IdempotencyKeyReused"
    status = 409


class QuotaExceeded(DomainError):
    """A job that can never fit the cluster or the quota, rejected at submit. ``field`` names what to change."""

    code = "JobNodeCountExceedsCoreQuota"
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        if self.field is not None:
            body["error"]["details"] = [{"field": self.field, "rule": self.message}]  # type: ignore[index]
        return body


class TransientError(Exception):
    """Something outside the domain failed in a way that may pass (429, 503, timeout, lost race).
    The message is redelivered; after maxDeliveryCount it is dead-lettered."""


class ConcurrencyConflict(TransientError):
    """A conditional write lost a race (etag / version mismatch): retry with fresh state."""
