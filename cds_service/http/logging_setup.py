"""Structured JSON logs with a request id. Callers log counts and codes, never patient data or tokens."""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any

from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"levelname": "level", "asctime": "time"},
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def assign_request_id() -> None:
    supplied = request.headers.get("X-Request-Id", "")
    g.request_id = supplied if 0 < len(supplied) <= 64 and supplied.replace("-", "").isalnum() else uuid.uuid4().hex


def request_log_fields(status: int, **extra: Any) -> dict[str, Any]:
    """What every access-log line says: method, route (not the raw path: it may hold ids), status."""
    rule = request.url_rule.rule if request.url_rule else "(unmatched)"
    return {"method": request.method, "route": rule, "status": status, **extra}
