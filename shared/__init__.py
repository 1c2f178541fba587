"""ComputePlane core: domain, handlers, ports, adapters, API and the local host."""
