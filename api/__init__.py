"""The REST API (FastAPI): `create_app()` builds it; `orchestrator api` serves it."""
