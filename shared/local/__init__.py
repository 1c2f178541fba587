"""The local host: runs ``function_app`` on one machine with no cloud (embedded queue, timer, uvicorn)."""
