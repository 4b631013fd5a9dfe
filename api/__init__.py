"""The REST API (FastAPI) arrives with the API issue; nothing is served from here yet."""
