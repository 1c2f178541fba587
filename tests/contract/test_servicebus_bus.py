"""The Service Bus adapter, checked at the SDK boundary: no Service Bus (or emulator) can run here, so the tests
check the exact ``ServiceBusMessage`` objects it builds and the exact calls the SDK would get, through a recording
fake client; received messages are real SDK objects decoded from AMQP bytes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus._pyamqp._encode import encode_payload  # the SDK's own encoder: real wire bytes
from azure.servicebus._pyamqp.message import Header, Message, Properties
from azure.servicebus._pyamqp.types import TYPE, VALUE, AMQPTypes
from azure.servicebus.exceptions import (
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)

from shared.adapters.credentials import azure_credential, forget_credentials
from shared.adapters.servicebus_bus import (
    DEAD_LETTER_QUEUE,
    MAX_PROPERTY_CHARS,
    ServiceBusEventBus,
    build_message,
    service_bus_client_factory,
    to_function_message,
)
from shared.bootstrap import build
from shared.config import Settings
from shared.domain.errors import TransientError
from shared.domain.events import CLUSTER_EVENTS, EVENT_KINDS, JOB_EVENTS, CloudEvent, new_event

EMULATOR = ("Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;"
            "UseDevelopmentEmulator=true;")  # the emulator's documented, public connection string


# --- a recording fake of ServiceBusClient / ServiceBusSender ------------------------------------------------------
class FakeSender:
    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.sent: list[ServiceBusMessage] = []
        self.closed = False
        self.fail_with: Exception | None = None
        self.in_send = 0
        self.overlapped = False

    def send_messages(self, message: ServiceBusMessage) -> None:
        self.in_send += 1
        self.overlapped |= self.in_send > 1
        time.sleep(0.001)  # widen the window in which unsynchronised sends would overlap
        self.in_send -= 1
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(message)

    def close(self) -> None:
        self.closed = True


class FakeClient:
    def __init__(self) -> None:
        self.sender_calls: list[dict[str, Any]] = []
        self.senders: dict[str, FakeSender] = {}
        self.closed = False

    def get_queue_sender(self, queue_name: str) -> FakeSender:
        self.sender_calls.append({"queue_name": queue_name})
        sender = self.senders[queue_name] = FakeSender(queue_name)
        return sender

    def close(self) -> None:
        self.closed = True


class FakeClientFactory:
    def __init__(self) -> None:
        self.clients: list[FakeClient] = []

    def __call__(self) -> FakeClient:
        self.clients.append(FakeClient())
        return self.clients[-1]


@pytest.fixture
def factory() -> FakeClientFactory:
    return FakeClientFactory()


@pytest.fixture
def bus(factory: FakeClientFactory) -> ServiceBusEventBus:
    return ServiceBusEventBus(factory)


def event_of_type(event_type: str, event_id: str | None = None) -> CloudEvent:
    return new_event(event_type, "ws1", "gpu-cluster", {"k": "v"}, event_id or f"id-{event_type}",
                     time=datetime(2026, 1, 1, tzinfo=UTC))


def body_of(message: ServiceBusMessage) -> bytes:
    return b"".join(message.body)


def fields(message: ServiceBusMessage) -> dict[str, Any]:
    """Everything a ServiceBusMessage carries to the broker (it has no __eq__)."""
    names = ("message_id", "session_id", "content_type", "subject", "application_properties",
             "scheduled_enqueue_time_utc", "time_to_live", "correlation_id", "partition_key", "to", "reply_to",
             "reply_to_session_id")
    return {"body": body_of(message)} | {name: getattr(message, name) for name in names}


# --- the messages --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", sorted(EVENT_KINDS))
def test_each_event_type_becomes_a_structured_cloudevent_message_keyed_for_dedup_and_sessions(event_type: str) -> None:
    event = event_of_type(event_type)
    message = build_message(event)
    assert body_of(message) == event.to_json()
    assert message.message_id == event.id
    assert message.session_id == "ws1/gpu-cluster"
    assert message.content_type == "application/cloudevents+json"
    assert message.subject == event_type
    assert message.application_properties == {"cloudEvents_type": event_type, "cloudEvents_id": event.id}
    assert message.scheduled_enqueue_time_utc is None
    assert message.time_to_live is None


def test_a_delayed_event_is_a_scheduled_message() -> None:
    not_before = datetime(2026, 1, 1, 12, 30, 5, 250000, tzinfo=UTC)
    message = build_message(event_of_type("computeplane.scale.request"), not_before)
    assert message.scheduled_enqueue_time_utc == not_before
    assert message.message_id == "id-computeplane.scale.request"


def test_a_naive_delay_is_taken_as_utc_not_local_time() -> None:
    naive = datetime(2026, 1, 1, 12, 30, 5)
    message = build_message(event_of_type("computeplane.scale.request"), naive)
    assert message.scheduled_enqueue_time_utc == naive.replace(tzinfo=UTC)


def test_publish_sends_the_built_message_to_the_event_queue(bus: ServiceBusEventBus, factory: FakeClientFactory
                                                             ) -> None:
    event = event_of_type("computeplane.job.submit")
    not_before = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    bus.publish(event, not_before=not_before)
    (client,) = factory.clients
    assert client.sender_calls == [{"queue_name": JOB_EVENTS}]
    (sent,) = client.senders[JOB_EVENTS].sent
    assert fields(sent) == fields(build_message(event, not_before))
    assert sent.scheduled_enqueue_time_utc == not_before


def test_one_client_and_one_sender_per_queue_are_reused(bus: ServiceBusEventBus, factory: FakeClientFactory) -> None:
    for n in range(3):
        bus.publish(event_of_type("computeplane.cluster.create", f"c{n}"))
        bus.publish(event_of_type("computeplane.job.submit", f"j{n}"))
    (client,) = factory.clients
    assert client.sender_calls == [{"queue_name": CLUSTER_EVENTS}, {"queue_name": JOB_EVENTS}]
    assert [m.message_id for m in client.senders[CLUSTER_EVENTS].sent] == ["c0", "c1", "c2"]
    assert [m.message_id for m in client.senders[JOB_EVENTS].sent] == ["j0", "j1", "j2"]


def test_concurrent_publishers_share_one_client_and_never_send_on_one_sender_at_once(
        bus: ServiceBusEventBus, factory: FakeClientFactory) -> None:
    start = threading.Barrier(16)

    def publish(n: int) -> None:
        start.wait()
        for k in range(5):
            bus.publish(event_of_type("computeplane.node.ready", f"n{n}-{k}"))

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (client,) = factory.clients
    assert client.sender_calls == [{"queue_name": "scale-events"}]
    sender = client.senders["scale-events"]
    assert len(sender.sent) == 80
    assert not sender.overlapped  # the SDK's senders are not thread-safe


@pytest.mark.parametrize("error", [ServiceBusConnectionError(), ServiceBusCommunicationError(),
                                   OperationTimeoutError(), ServiceBusServerBusyError()],
                         ids=lambda e: type(e).__name__)
def test_transient_sdk_errors_become_transient_error(bus: ServiceBusEventBus, factory: FakeClientFactory,
                                                     error: ServiceBusError) -> None:
    bus.publish(event_of_type("computeplane.cluster.update", "first"))  # opens the sender
    factory.clients[0].senders[CLUSTER_EVENTS].fail_with = error
    with pytest.raises(TransientError) as raised:
        bus.publish(event_of_type("computeplane.cluster.update", "second"))
    assert raised.value.__cause__ is error
    assert "cluster-events" in str(raised.value)


@pytest.mark.parametrize("error", [ServiceBusAuthorizationError(), MessagingEntityNotFoundError()],
                         ids=lambda e: type(e).__name__)
def test_other_sdk_errors_propagate_unchanged(bus: ServiceBusEventBus, factory: FakeClientFactory,
                                              error: ServiceBusError) -> None:
    bus.publish(event_of_type("computeplane.cluster.update", "first"))
    factory.clients[0].senders[CLUSTER_EVENTS].fail_with = error
    with pytest.raises(type(error)):
        bus.publish(event_of_type("computeplane.cluster.update", "second"))


def test_dead_letter_sends_the_original_bytes_to_the_deadletter_queue_with_the_reason(
        bus: ServiceBusEventBus, factory: FakeClientFactory) -> None:
    bus.dead_letter(CLUSTER_EVENTS, "msg-7", b"\xff not json", "body is not UTF-8 JSON")
    (client,) = factory.clients
    assert client.sender_calls == [{"queue_name": DEAD_LETTER_QUEUE}]
    (sent,) = client.senders[DEAD_LETTER_QUEUE].sent
    assert body_of(sent) == b"\xff not json"
    assert sent.message_id == "msg-7"
    assert sent.application_properties == {"DeadLetterReason": "body is not UTF-8 JSON",
                                           "OriginalQueue": CLUSTER_EVENTS}


def test_a_long_dead_letter_reason_is_cut_to_the_property_limit(bus: ServiceBusEventBus,
                                                                factory: FakeClientFactory) -> None:
    bus.dead_letter(JOB_EVENTS, "msg-8", b"{}", "x" * 100_000)
    (sent,) = factory.clients[0].senders[DEAD_LETTER_QUEUE].sent
    assert sent.application_properties is not None
    assert sent.application_properties["DeadLetterReason"] == "x" * MAX_PROPERTY_CHARS


def test_close_closes_senders_and_client_and_the_next_publish_reconnects(bus: ServiceBusEventBus,
                                                                         factory: FakeClientFactory) -> None:
    bus.publish(event_of_type("computeplane.cluster.create", "a"))
    bus.close()
    first = factory.clients[0]
    assert first.closed and first.senders[CLUSTER_EVENTS].closed
    bus.publish(event_of_type("computeplane.cluster.create", "b"))
    assert len(factory.clients) == 2


# --- connecting ----------------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_credentials() -> Iterator[None]:
    forget_credentials()
    yield
    forget_credentials()


def test_a_connection_string_wins_and_covers_the_emulator() -> None:
    settings = Settings(bus="servicebus", service_bus_namespace="ignored.servicebus.windows.net")
    client = service_bus_client_factory(settings, {"ServiceBusConnection": EMULATOR})()
    with client:
        assert isinstance(client, ServiceBusClient)
        assert client.fully_qualified_namespace == "localhost"


@pytest.mark.usefixtures("fresh_credentials")
def test_the_namespace_setting_connects_with_the_app_identity() -> None:
    settings = Settings(bus="servicebus", service_bus_namespace="sb-cp.servicebus.windows.net")
    with service_bus_client_factory(settings, {})() as client:
        assert client.fully_qualified_namespace == "sb-cp.servicebus.windows.net"


def test_without_namespace_or_connection_string_start_up_fails_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ServiceBusConnection__fullyQualifiedNamespace"):
        ServiceBusEventBus.from_settings(Settings(bus="servicebus"), {})
    with pytest.raises(ValueError, match="ServiceBusConnection__fullyQualifiedNamespace"):
        build(Settings(bus="servicebus", data_dir=tmp_path))


def test_a_plain_value_in_the_connection_setting_is_rejected_with_the_fix() -> None:
    with pytest.raises(ValueError, match="ServiceBusConnection__fullyQualifiedNamespace"):
        service_bus_client_factory(Settings(bus="servicebus"), {"ServiceBusConnection": "sb-cp.servicebus.windows.net"})


@pytest.mark.usefixtures("fresh_credentials")
@pytest.mark.parametrize("marker", ["IDENTITY_ENDPOINT", "MSI_ENDPOINT", "WEBSITE_INSTANCE_ID"])
def test_in_azure_the_credential_is_the_managed_identity(marker: str) -> None:
    credential = azure_credential("11111111-2222-3333-4444-555555555555", {marker: "set"})
    assert isinstance(credential, ManagedIdentityCredential)


@pytest.mark.usefixtures("fresh_credentials")
def test_elsewhere_the_credential_is_the_default_chain_and_is_cached_per_client_id() -> None:
    first = azure_credential("client-a", {})
    assert isinstance(first, DefaultAzureCredential)
    assert azure_credential("client-a", {}) is first
    assert azure_credential("client-b", {}) is not first
    assert azure_credential(None, {}) is azure_credential("", {})


# --- receiving (ServiceBusPump's conversion) -----------------------------------------------------------------------
def received(*, delivery_count: int, body: bytes, lock_token: uuid.UUID) -> ServiceBusReceivedMessage:
    """A message as a receiver gets it: encoded to AMQP bytes and decoded by the SDK."""
    def timestamp(ms: int) -> dict[str, Any]:
        return {TYPE: AMQPTypes.timestamp, VALUE: ms}

    wire = Message(
        header=Header(delivery_count=delivery_count),
        delivery_annotations={b"x-opt-lock-token": lock_token},
        message_annotations={b"x-opt-enqueued-time": timestamp(1767225600123),
                             b"x-opt-sequence-number": {TYPE: AMQPTypes.long, VALUE: 42}},
        properties=Properties(message_id=b"ev-1", group_id=b"ws1/gpu-cluster",
                              content_type=b"application/cloudevents+json", subject=b"computeplane.node.ready"),
        application_properties={b"cloudEvents_type": b"computeplane.node.ready", b"attempt": 3},
        data=[body])
    return ServiceBusReceivedMessage.from_bytes(bytes(encode_payload(bytearray(), wire)))


def test_a_received_message_becomes_what_the_functions_host_would_pass() -> None:
    token = uuid.uuid4()
    body = event_of_type("computeplane.node.ready").to_json()
    msg = to_function_message(received(delivery_count=2, body=body, lock_token=token))
    assert msg.get_body() == body
    assert msg.message_id == "ev-1"
    assert msg.session_id == "ws1/gpu-cluster"
    assert msg.delivery_count == 3  # AMQP counts the 2 earlier deliveries; the host counts this one too
    assert msg.enqueued_time_utc == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=123)
    assert msg.sequence_number == 42
    assert msg.lock_token == str(token)
    assert msg.content_type == "application/cloudevents+json"
    assert msg.subject == "computeplane.node.ready"
    assert msg.application_properties == {"cloudEvents_type": "computeplane.node.ready", "attempt": 3}
    assert msg.user_properties == msg.application_properties


def test_the_first_delivery_counts_as_one() -> None:
    msg = to_function_message(received(delivery_count=0, body=b"{}", lock_token=uuid.uuid4()))
    assert msg.delivery_count == 1
