"""In-memory stand-ins of the ports for fast handler tests, each proven by the port's contract suite."""
