"""Everything a worker builds once at start-up and shares across requests (kept on the Flask app)."""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.auth import Authenticator, Caller
from cds_service.errors import ClientError
from cds_service.fhir_client import FhirClient, FhirRequestLimits, is_allowed
from cds_service.fhir_data import PrefetchResolver
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.response_check import ResponseCheck
from cds_service.settings import Settings
from cds_service.store import Store


@dataclass
class Runtime:
    settings: Settings
    knowledge: Knowledge
    store: Store
    resolver: PrefetchResolver
    authenticator: Authenticator
    response_check: ResponseCheck

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        knowledge = load_knowledge(settings.content_dir, settings.cards_dir, settings.guide_id)
        client = FhirClient(FhirRequestLimits(settings.fhir_timeout, settings.fhir_max_response_bytes,
                                              settings.allow_http_loopback))
        store = Store(settings.database_url, settings.patient_hash_key)
        return cls(settings, knowledge, store, PrefetchResolver(client), Authenticator(settings, store),
                   ResponseCheck(knowledge, settings.base_url))

    def authorize_fhir_server(self, caller: Caller, fhir_server: str | None) -> None:
        """A verified issuer may only send the FHIR servers configured for it (403 otherwise)."""
        if caller.issuer is not None and fhir_server and not is_allowed(fhir_server, caller.fhir_server_prefixes):
            raise ClientError(403, "this issuer may not send this fhirServer", where="fhirServer", code="forbidden")
