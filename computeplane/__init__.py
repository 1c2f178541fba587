"""ComputePlane's command line and Python client (usable without the server's own packages)."""
