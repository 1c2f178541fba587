"""A discrete-event simulator of one cluster in virtual time, driving the real ``shared.domain.reconcile``.

Jobs arrive, the domain takes them (``accept_job``) and reconciles; the simulator plays the node provider (boot delay,
run durations, preemptions) and measures node-hours, waits and cost for ComputePlane's policy and its peers.
Everything here is pure except ``workloads`` (which reads trace files).
"""
