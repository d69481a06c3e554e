"""Who may call: in `jwt` mode every call must carry a verified JWT from a trusted EHR; `off` is for local demos.

JWT verification itself is the Security issue; until it exists, `jwt` mode refuses every call with 401 so that
nothing is ever let through unchecked by default.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.errors import ClientError
from cds_service.settings import Settings

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="cds-services"'}


@dataclass(frozen=True)
class Caller:
    """A verified caller and what it may do."""

    issuer: str | None
    fhir_server_prefixes: tuple[str, ...]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def authenticate(self, authorization: str | None, audience: str) -> Caller:
        if self.settings.auth == "off":
            return Caller(None, self.settings.allowed_fhir_servers)
        raise ClientError(401, "JWT verification is not configured: this deployment accepts no calls yet",
                          code="login", headers=WWW_AUTHENTICATE)
