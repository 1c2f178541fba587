"""The span processor every exporter of ours sits behind: the SDK's batch processor with smaller batches.

A finished span waits in the batch processor's queue until its batch is exported. With the SDK's default batch
(512 spans, a few hundred events) every span outlives two young-generation collections, is promoted to the oldest
generation and, a few thousand events on, helps set off a full garbage collection of the whole heap: on the
embedded queue-trigger path 20 to 45 µs per event, more than any one span. Batches of 32 are exported while most
of their spans are still young, so they are freed by reference counting: about a quarter fewer collections of every
generation (in 2,500 events: 110 young, 10 middle, 0 or 1 full instead of 143, 13 and 2). The standard
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` and ``OTEL_BSP_SCHEDULE_DELAY`` still win when set."""

from __future__ import annotations

import os

from opentelemetry.sdk.environment_variables import OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_SCHEDULE_DELAY
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

SPANS_PER_BATCH = 32
SCHEDULE_DELAY_MS = 1000  # the most a span waits when traffic is light


def batch_span_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    return BatchSpanProcessor(
        exporter,
        max_export_batch_size=None if os.environ.get(OTEL_BSP_MAX_EXPORT_BATCH_SIZE) else SPANS_PER_BATCH,
        schedule_delay_millis=None if os.environ.get(OTEL_BSP_SCHEDULE_DELAY) else SCHEDULE_DELAY_MS)
