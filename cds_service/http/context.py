"""The one typed way for a route to reach what its worker built at start-up."""

from __future__ import annotations

from flask import Flask, current_app

from cds_service.runtime import Runtime

RUNTIME_KEY = "cds_runtime"


def attach_runtime(app: Flask, runtime: Runtime) -> None:
    app.extensions[RUNTIME_KEY] = runtime


def current_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions[RUNTIME_KEY]
    return runtime
