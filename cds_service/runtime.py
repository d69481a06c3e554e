"""Everything a worker builds once at start-up and shares across requests (kept on the Flask app).

The Engine answers hook calls and needs neither a database nor authentication, so the CLI builds only that; the
Runtime adds the store and the authenticator of the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from cds_service.fhir.client import FhirClient, FhirRequestLimits
from cds_service.fhir.prefetch import PrefetchResolver
from cds_service.hooks.response_check import ResponseCheck
from cds_service.knowledge.load import load_knowledge
from cds_service.knowledge.model import Knowledge
from cds_service.security.auth import Authenticator
from cds_service.settings import Settings
from cds_service.store import Store


@dataclass(frozen=True)
class Engine:
    settings: Settings
    knowledge: Knowledge
    resolver: PrefetchResolver
    response_check: ResponseCheck

    @classmethod
    def build(cls, settings: Settings, knowledge: Knowledge | None = None) -> Engine:
        """`knowledge`: content already loaded and checked (the server's master process), else read now."""
        knowledge = knowledge or load_knowledge(settings.content_dir, settings.cards_dir, settings.guide_id)
        client = FhirClient(
            FhirRequestLimits(
                settings.fhir_timeout,
                settings.fhir_max_response_bytes,
                settings.allow_http_loopback,
                settings.fhir_max_concurrent,
            )
        )
        return cls(
            settings,
            knowledge,
            PrefetchResolver(client, settings.fhir_max_pages),
            ResponseCheck(knowledge, settings.base_url),
        )


@dataclass(frozen=True)
class Runtime:
    engine: Engine
    store: Store
    authenticator: Authenticator

    @classmethod
    def build(cls, settings: Settings, knowledge: Knowledge | None = None) -> Runtime:
        store = Store(
            settings.database_url, settings.patient_hash_key, store_override_comments=settings.store_override_comments
        )
        return cls(Engine.build(settings, knowledge), store, Authenticator(settings, store))

    @property
    def settings(self) -> Settings:
        return self.engine.settings

    @property
    def knowledge(self) -> Knowledge:
        return self.engine.knowledge

    @property
    def response_check(self) -> ResponseCheck:
        return self.engine.response_check
