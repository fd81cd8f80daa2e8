"""The HTTP edge: an OpenAI-compatible API plus the assistant's extensions."""
from assistant.server.app import create_app

__all__ = ["create_app"]
