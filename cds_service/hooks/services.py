"""The CDS services this deployment offers, declared once as data; the HTTP layer is generic over them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

OBSERVATION_PAGE_SIZE = 100

# 2.0-safe templates: only root-level primitive context tokens, no today(); dates are filtered server-side.
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "observations": f"Observation?patient={{{{context.patientId}}}}&_sort=-date&_count={OBSERVATION_PAGE_SIZE}",
}
REQUIRED_PREFETCH = frozenset({"observations"})


def observation_search(since: str) -> str:
    """The search the service sends itself when it fetches the Observations: the discovery template plus a date
    floor (a FHIR dateTime: now minus the longest tier window), which a 2.0 template cannot say without today().

    A server's date filter leaves out Observations without effective[x]; they are rare, and a prefetch (which has no
    date floor) still brings them.
    """
    return f"Observation?patient={{{{context.patientId}}}}&date=ge{since}&_sort=-date&_count={OBSERVATION_PAGE_SIZE}"


OWN_SEARCHES: dict[str, Callable[[str], str]] = {"observations": observation_search}

USAGE = (
    "Send the prefetch as declared, or fhirServer with fhirAuthorization (scope patient/Observation.read) "
    "so the service can fetch the Observations. Calls must carry a JWT from a trusted issuer."
)


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: dict[str, str]
    usage_requirements: str

    def discovery_entry(self) -> dict[str, object]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
            "usageRequirements": self.usage_requirements,
        }


SERVICES: tuple[ServiceDefinition, ...] = (
    ServiceDefinition(
        id="weakness-triage-patient-view",
        hook="patient-view",
        title="Weakness triage",
        description=(
            "Looks at the patient's recent Observations for the warning signs of the Weakness care guide "
            "(stroke signs, spinal cord and bladder or bowel red flags, mood) and shows how urgently to act."
        ),
        prefetch=PREFETCH,
        usage_requirements=USAGE,
    ),
    ServiceDefinition(
        id="weakness-triage-encounter-start",
        hook="encounter-start",
        title="Weakness triage at encounter start",
        description=(
            "When an encounter starts, checks the patient's recent Observations for the warning signs of the "
            "Weakness care guide and shows how urgently to act."
        ),
        prefetch=PREFETCH,
        usage_requirements=USAGE,
    ),
)
SERVICES_BY_ID = {service.id: service for service in SERVICES}
