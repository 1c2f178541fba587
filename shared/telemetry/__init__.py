"""OpenTelemetry for ComputePlane: one trace per user action (HTTP request -> CloudEvent -> queue trigger ->
handler -> store and provider calls), metrics, and logs that carry workspace, cluster, job and event ids.

Off unless configured (``shared.telemetry.setup``): every hook then costs one boolean test. The handlers see only
two small hooks (``handling`` around an event, ``count_decisions``); the rest wraps the ports in the composition
root and the ASGI app at its edge."""
