"""zturbo serve: a local image server and web UI (FastAPI). `create_app` is the entry point."""

from .app import create_app

__all__ = ["create_app"]
