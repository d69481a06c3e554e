"""One exception type for what a client did wrong, turned into a FHIR OperationOutcome in one place."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A request the service will not process. `status` is the HTTP status; `where` names the offending field."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        where: str | None = None,
        code: str = "invalid",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.where = where
        self.code = code
        self.headers = headers or {}


def operation_outcome(
    message: str, *, where: str | None = None, code: str = "invalid", severity: str = "error"
) -> dict[str, Any]:
    """A FHIR R4 OperationOutcome with one issue (CDS Hooks 3.0 asks for one on every non-2xx answer)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": message}
    if where:
        issue["expression"] = [where]
    return {"resourceType": "OperationOutcome", "issue": [issue]}
