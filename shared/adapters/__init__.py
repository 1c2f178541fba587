"""Adapters: the concrete implementations of the ports (storage, queues, nodes, identity)."""
