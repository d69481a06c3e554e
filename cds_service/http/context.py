"""The one typed way for a route to reach what its worker built at start-up."""

from __future__ import annotations

from flask import Flask, current_app

from cds_service.repeat_alerts import AcknowledgedTemplate, RepeatAlerts
from cds_service.runtime import Runtime

RUNTIME_KEY = "cds_runtime"
REPEAT_ALERTS_KEY = "cds_repeat_alerts"


def attach_runtime(app: Flask, runtime: Runtime) -> None:
    app.extensions[RUNTIME_KEY] = runtime
    template = AcknowledgedTemplate.load(runtime.settings.cards_dir)
    app.extensions[REPEAT_ALERTS_KEY] = RepeatAlerts(runtime.knowledge, template)


def current_repeat_alerts() -> RepeatAlerts:
    repeat_alerts: RepeatAlerts = current_app.extensions[REPEAT_ALERTS_KEY]
    return repeat_alerts


def current_runtime() -> Runtime:
    runtime: Runtime = current_app.extensions[RUNTIME_KEY]
    return runtime
