"""Every Azure call the Batch provider makes: a bounded timeout, retried on 429 and 5xx (and Batch's transient
409 PoolBeingResized) with the wait the service asks for in ``Retry-After``, and one way to read an error's code.

The SDKs' own retry policies are switched off (``retry_total=0``) so retries happen once, here, where they are
bounded in attempts and in total time: a handler that cannot reach Azure gives up and its message is redelivered.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, stop_after_delay

T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 30
MAX_ATTEMPTS = 6
MAX_TOTAL_SECONDS = 90.0
LONGEST_WAIT_SECONDS = 30.0
TRANSIENT_CONFLICTS = frozenset({"PoolBeingResized", "OperationInvalidForCurrentState"})
# Keyword arguments every SDK client is built with.
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": CONNECT_TIMEOUT_SECONDS,
                                  "read_timeout": READ_TIMEOUT_SECONDS, "retry_total": 0}


def error_code(error: HttpResponseError) -> str:
    """The service's error code: ARM's ``{"error": {"code"}}`` or Batch's ``{"code"}`` body."""
    if error.error is not None and error.error.code:
        return str(error.error.code)
    body = _body_of(error)
    if isinstance(body, dict):
        code = body.get("code") or (body.get("error") or {}).get("code")
        if code:
            return str(code)
    return ""


def error_message(error: HttpResponseError) -> str:
    """The service's message, Batch's ``{"message": {"value"}}`` included."""
    body = _body_of(error)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if isinstance(message, dict):
            message = message.get("value")
        if message:
            return str(message)
    return error.message or str(error)


def _body_of(error: HttpResponseError) -> Any:
    if error.response is None:
        return None
    try:
        return json.loads(error.response.text())
    except ValueError:
        return None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True  # no answer (refused, reset, timed out): the call may be sent again, every call is idempotent
    if not isinstance(error, HttpResponseError) or error.status_code is None:
        return False
    return (error.status_code == 429 or error.status_code >= 500
            or (error.status_code == 409 and error_code(error) in TRANSIENT_CONFLICTS))


def retry_after_seconds(error: BaseException) -> float | None:
    """What the service asked us to wait (``Retry-After`` seconds or HTTP date, or ``retry-after-ms``)."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            return None
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(parsed.timestamp() - time.time(), 0.0)


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome is not None else None
    asked = retry_after_seconds(error) if error is not None else None
    backoff = min(0.5 * 2 ** (state.attempt_number - 1), 8.0)
    return min(asked if asked is not None else backoff, LONGEST_WAIT_SECONDS)


def call_azure(operation: Callable[[], T]) -> T:
    """Run one idempotent Azure call, retrying transient failures within the bounds above."""
    retrying = retry(retry=retry_if_exception(is_transient), wait=_wait, reraise=True,
                     stop=stop_after_attempt(MAX_ATTEMPTS) | stop_after_delay(MAX_TOTAL_SECONDS))
    return retrying(operation)()
