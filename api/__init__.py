"""The HTTP API (FastAPI), its event stream and the operator console served from console/."""
