"""Posting a transaction Bundle to a tester's FHIR server (`cds-service examples load`)."""

from __future__ import annotations

from typing import Any

import requests

from cds_service.fhir.url_policy import scheme_problem


class UploadRefused(Exception):
    """The FHIR server refused the Bundle, or could not be reached; the message says what it answered."""


def _outcome_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or "(empty body)"
    issues = body.get("issue") if isinstance(body, dict) else None
    if isinstance(issues, list) and issues:
        return "; ".join(str(i.get("diagnostics") or i.get("code") or "") for i in issues if isinstance(i, dict))
    return str(body)[:300]


def post_transaction(base_url: str, bundle: dict[str, Any], token: str | None, timeout: float = 30.0) -> None:
    """POST the transaction Bundle to the server's base URL; raises UploadRefused naming the server's answer."""
    problem = scheme_problem(base_url, allow_http_loopback=True)
    if problem:
        raise UploadRefused(f"--fhir-server {base_url!r} {problem}")
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = requests.post(base_url.rstrip("/"), json=bundle, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise UploadRefused(f"{base_url} could not be reached: {type(exc).__name__}") from exc
    if not response.ok:
        raise UploadRefused(f"{base_url} answered HTTP {response.status_code}: {_outcome_text(response)}")
