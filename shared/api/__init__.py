"""The HTTP API (FastAPI): served by uvicorn locally and by ``func.AsgiFunctionApp`` in Azure."""
