"""Prefetch resolution: use what the EHR sent, fetch what it did not, and say 412 when data cannot be had.

It decides in one place whether the service may call the request's fhirServer back (403 when a verified issuer
sends a FHIR server not configured for it; 412 when a fetch is needed and not allowed) and that the data is the
context's patient's. An issuer configured with `fhir_servers: []` is prefetch-only: its fhirServer (the CDS Hooks
sandbox sends one with every call) is never called back and never refused; a call that would need it is a 412.

Per prefetch key (CDS Hooks 2.0.1): present -> use it (a Bundle's `next` pages are fetched with the bearer
token); null -> the EHR has no data; omitted or an OperationOutcome -> for a key the triage needs (REQUIRED_PREFETCH:
the Observations), fetch it from fhirServer with the service's own search (OWN_SEARCHES: dated back to `since`), but
only when fhirServer starts with an allowed prefix, and 412 when it cannot be had; an optional key (the Patient, only
checked against context.patientId when sent) is not fetched.

Paging: every `next` page is followed within the one deadline, up to CDS_FHIR_MAX_PAGES. A `next` link off the
allowed FHIR server is refused loudly (412). When the page cap, the size cap, the deadline or a failed next page
stops the paging after the first page, the data read so far is used and PatientData.read_in_part says so.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from cds_service.caller import Caller
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.errors import ClientError
from cds_service.fhir.client import FhirClient, FhirUnavailable
from cds_service.fhir.url_policy import is_allowed, origin
from cds_service.hooks.services import OWN_SEARCHES, REQUIRED_PREFETCH, ServiceDefinition

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")


@dataclass(frozen=True)
class ReadInPart:
    """Paging stopped after the first page: the Observations are only those read. No patient data in here."""

    reason: str  # page-cap | size-cap | deadline | next-page-failed
    pages_read: int
    observations_read: int
    newest_read: datetime | None  # the newest and oldest effective times among the Observations read
    oldest_read: datetime | None
    detail: str | None = None  # why the next page could not be had (the FhirUnavailable text), else None

    def log_fields(self) -> dict[str, Any]:
        return {"reason": self.reason, "pages_read": self.pages_read, "observations_read": self.observations_read}


@dataclass
class PatientData:
    patient: dict[str, Any] | None = None
    observations: list[dict[str, Any]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)  # prefetch keys we had to fetch ourselves
    pages_followed: int = 0
    fhir_ms: float = 0.0  # time spent in calls to the FHIR server (the access log reports it)
    read_in_part: ReadInPart | None = None


@dataclass(frozen=True)
class _Stop:
    """Why paging stopped before the last page."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class FhirAccess:
    """Where and how the service may call back for this request."""

    server: str | None
    token: str | None
    allowed_prefixes: tuple[str, ...]
    max_pages: int
    refusal: str | None = None  # why fhirServer may not be called back, in words (None: it may)


def render_template(template: str, context: dict[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = context.get(match.group(1))
        if not isinstance(value, str):
            raise ClientError(400, f"prefetch needs context.{match.group(1)}", where=f"context.{match.group(1)}")
        return quote(value, safe="")

    return _TOKEN.sub(substitute, template)


def fhir_date_floor(since: datetime) -> str:
    """`since` as a FHIR dateTime in UTC, written with `Z` (a `+00:00` offset would need `%2B` in a query)."""
    return since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _precondition_failed(key: str, reason: str) -> ClientError:
    return ClientError(
        412,
        f"prefetch '{key}' was not provided and could not be fetched: {reason}",
        where=f"prefetch.{key}",
        code="processing",
    )


def _more_pages_refused(key: str, fetched: bool, cause: str) -> ClientError:
    what = f"the search the service sent for prefetch '{key}'" if fetched else f"prefetch '{key}'"
    return ClientError(
        412,
        f"{what} has more pages (next link), and they cannot be read: {cause}",
        where=f"prefetch.{key}",
        code="processing",
    )


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries' resources, except search entries whose mode is "outcome" (or anything but match/include)."""
    entries = bundle.get("entry")
    resources = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            resource, search = entry.get("resource"), entry.get("search")
            if isinstance(resource, dict) and (
                not isinstance(search, dict) or search.get("mode") in (None, "match", "include")
            ):
                resources.append(resource)
    return resources


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _next_link_problem(url: str, access: FhirAccess) -> str | None:
    """Why the service may not follow this `next` link (None when it may): SSRF rules, the token's own server."""
    if access.refusal or not access.server:
        return "the request has no fhirServer to read them from" if not access.server else access.refusal
    if origin(url) != origin(access.server) or not is_allowed(url, access.allowed_prefixes):
        return "the next link points outside the allowed FHIR server"
    return None


def _observed_at(resource: dict[str, Any]) -> datetime | None:
    period = resource.get("effectivePeriod")
    start = period.get("start") if isinstance(period, dict) else None
    for value in (resource.get("effectiveDateTime"), resource.get("effectiveInstant"), start):
        if (when := parse_fhir_datetime(value)) is not None:
            return when
    return parse_fhir_datetime(resource.get("issued"))


def _read_in_part(stop: _Stop, pages_read: int, resources: list[dict[str, Any]]) -> ReadInPart:
    observations = [r for r in resources if r.get("resourceType") == "Observation"]
    times = [when for r in observations if (when := _observed_at(r)) is not None]
    return ReadInPart(
        reason=stop.reason,
        pages_read=pages_read,
        observations_read=len(observations),
        newest_read=max(times, default=None),
        oldest_read=min(times, default=None),
        detail=stop.detail,
    )


def _refusal(server: str | None, caller: Caller) -> str | None:
    if not server:
        return "the request has no fhirServer"
    if caller.issuer is not None and not caller.fhir_server_prefixes:
        return "the token's issuer is set up for prefetch only (fhir_servers: []), so fhirServer is not called back"
    if not is_allowed(server, caller.fhir_server_prefixes):
        return "fhirServer is not allowed (not in CDS_ALLOWED_FHIR_SERVERS)"
    return None


def fhir_access(hook_request: dict[str, Any], caller: Caller, max_pages: int) -> FhirAccess:
    """Where the service may call back for this request; 403 when a verified issuer may not send this fhirServer."""
    server = hook_request.get("fhirServer")
    prefixes = caller.fhir_server_prefixes
    if caller.issuer is not None and prefixes and server and not is_allowed(server, prefixes):
        raise ClientError(403, "this issuer may not send this fhirServer", where="fhirServer", code="forbidden")
    token = hook_request.get("fhirAuthorization", {}).get("access_token")
    return FhirAccess(server, token, prefixes, max_pages, _refusal(server, caller))


def _check_patient(data: PatientData, patient_id: str) -> None:
    if data.patient is not None and data.patient.get("id") != patient_id:
        raise ClientError(
            400, "prefetch.patient is not the patient named in context.patientId", where="prefetch.patient"
        )


class PrefetchResolver:
    def __init__(self, client: FhirClient, max_pages: int) -> None:
        self.client = client
        self.max_pages = max_pages

    def resolve(
        self, service: ServiceDefinition, hook_request: dict[str, Any], caller: Caller, since: datetime
    ) -> PatientData:
        """The patient data of a validated hook request: as prefetched, else fetched back to `since` (the oldest
        time the triage looks at); raises ClientError."""
        access = fhir_access(hook_request, caller, self.max_pages)
        context, prefetch = hook_request["context"], hook_request.get("prefetch", {})
        data = self._resolve(service, context, prefetch, access, since)
        _check_patient(data, context["patientId"])
        return data

    def _resolve(
        self,
        service: ServiceDefinition,
        context: dict[str, Any],
        prefetch: dict[str, Any],
        access: FhirAccess,
        since: datetime,
    ) -> PatientData:
        deadline = time.monotonic() + self.client.limits.timeout
        data = PatientData()
        for key, template in service.prefetch.items():
            value = prefetch.get(key, ...)
            if value is None:
                continue  # the EHR says: no data
            fetched_from = None
            if value is ... or (isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"):
                if key not in REQUIRED_PREFETCH:
                    continue  # used when sent (the Patient: an identity check), never worth a round trip
                own_search = OWN_SEARCHES.get(key)
                query = own_search(fhir_date_floor(since)) if own_search else template
                fetched_from, value = self._fetch(key, render_template(query, context), access, deadline, data)
                data.fetched.append(key)
            if not isinstance(value, dict):
                raise ClientError(
                    400, f"prefetch '{key}' must be a FHIR resource, a Bundle or null", where=f"prefetch.{key}"
                )
            self._take(key, value, data, access, deadline, fetched_from)
        return data

    def _get_json(self, url: str, access: FhirAccess, deadline: float, data: PatientData) -> Any:
        started = time.perf_counter()
        try:
            return self.client.get_json(url, token=access.token, deadline=deadline)
        finally:
            data.fhir_ms += (time.perf_counter() - started) * 1000

    def _fetch(
        self, key: str, relative_url: str, access: FhirAccess, deadline: float, data: PatientData
    ) -> tuple[str, dict[str, Any]]:
        """(the URL fetched, the resource it gave); 412 when the first page cannot be had."""
        if access.refusal or not access.server:
            raise _precondition_failed(key, access.refusal or "the request has no fhirServer")
        url = f"{access.server.rstrip('/')}/{relative_url}"
        if not is_allowed(url, access.allowed_prefixes):  # e.g. a patientId of ".." must not climb out
            raise _precondition_failed(key, "the prefetch URL leaves the allowed FHIR server")
        try:
            result = self._get_json(url, access, deadline, data)
        except FhirUnavailable as exc:
            log.warning("fhir_fetch_failed", extra={"prefetch_key": key, "reason": str(exc)})
            raise _precondition_failed(key, str(exc)) from exc
        if not isinstance(result, dict):
            raise _precondition_failed(key, "the FHIR server did not return a resource")
        return url, result

    def _take(
        self,
        key: str,
        value: dict[str, Any],
        data: PatientData,
        access: FhirAccess,
        deadline: float,
        fetched_from: str | None,
    ) -> None:
        if value.get("resourceType") == "Bundle":
            resources = bundle_resources(value)
            more, followed, stop = self._follow_pages(key, value, access, deadline, data, fetched_from)
            resources += more
            if stop is not None:
                data.read_in_part = _read_in_part(stop, 1 + followed, resources)
        else:
            resources = [value]
        for resource in resources:
            kind = resource.get("resourceType")
            if kind == "Patient" and data.patient is None:
                data.patient = resource
            elif kind == "Observation":
                data.observations.append(resource)

    def _follow_pages(
        self,
        key: str,
        bundle: dict[str, Any],
        access: FhirAccess,
        deadline: float,
        data: PatientData,
        fetched_from: str | None,
    ) -> tuple[list[dict[str, Any]], int, _Stop | None]:
        """The resources of the `next` pages, how many pages were read, and why paging stopped early (None: the
        last page was read). A link off the allowed FHIR server is 412: the refusal stays loud."""
        resources: list[dict[str, Any]] = []
        url = _next_link(bundle)
        seen = {fetched_from} if fetched_from else set()
        followed = 0
        while url and url not in seen:  # a next link back to a page already read ends the paging
            if problem := _next_link_problem(url, access):
                raise _more_pages_refused(key, fetched_from is not None, problem)
            if data.pages_followed >= access.max_pages:
                return resources, followed, _Stop("page-cap")
            seen.add(url)
            try:
                page = self._get_json(url, access, deadline, data)
            except FhirUnavailable as exc:
                log.warning("fhir_next_page_failed", extra={"prefetch_key": key, "reason": str(exc)})
                return resources, followed, _Stop(self._failure_reason(exc, deadline), str(exc))
            if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
                return resources, followed, _Stop("next-page-failed", "the next page is not a Bundle")
            data.pages_followed += 1
            followed += 1
            resources += bundle_resources(page)
            url = _next_link(page)
        return resources, followed, None

    def _failure_reason(self, exc: FhirUnavailable, deadline: float) -> str:
        if time.monotonic() >= deadline:
            return "deadline"
        if str(exc).startswith("FHIR response larger than"):  # the client's size-cap message
            return "size-cap"
        return "next-page-failed"
