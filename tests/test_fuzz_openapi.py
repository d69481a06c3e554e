"""schemathesis against the served /openapi.yaml of the deployed server (auth off, so generated requests get past
authentication): positive and negative generation over every operation. No 5xx, every answer conforms to the
document (status, content type, schema), every 4xx is an OperationOutcome. FUZZ_EXAMPLES sets the examples per
operation and mode (default 100: about half a minute on two shared cores)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from tests.support.service_server import ServiceServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
# ignored_auth: auth is off on this server. positive_data_acceptance: a request the document allows may still be
# refused with a 400 naming the field, for rules the document does not state (the hook must be the one of the
# service in the path; fhirServer must be a URL the service can call; fhirAuthorization needs fhirServer).
NOT_CHECKED = [schemathesis.checks.ignored_auth, schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def service() -> Iterator[ServiceServer]:
    with ServiceServer() as server:
        yield server


def _problems(case: schemathesis.Case, base_url: str, session: requests.Session, tally: Counter[str]) -> list[str]:
    response = case.call(base_url=base_url, session=session, timeout=10)
    tally["requests"] += 1
    tally[f"{response.status_code // 100}xx"] += 1
    label = f"{case.method} {case.formatted_path} -> {response.status_code}"
    problems = []
    try:
        case.validate_response(response, excluded_checks=NOT_CHECKED)
    except FailureGroup as failures:  # every check that failed
        problems += [
            f"{label}: {str(failure)[:300]} [answer: {response.text[:300]}]" for failure in failures.exceptions
        ]
    if 400 <= response.status_code < 500:
        content_type = " ".join(response.headers.get("content-type", []))  # lowercase keys, list values
        body = response.json() if content_type == "application/fhir+json" else {}
        if body.get("resourceType") != "OperationOutcome" or not body.get("issue"):
            problems.append(f"{label}: a 4xx that is not an OperationOutcome: {response.text[:200]}")
    return problems


def test_generated_requests_get_answers_that_conform_to_the_served_document(service: ServiceServer) -> None:
    served = yaml.safe_load(requests.get(f"{service.base_url}/openapi.yaml", timeout=5).text)
    for item in served["paths"].values():  # this server runs with CDS_AUTH=off: a missing token is not an error
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    schema = schemathesis.openapi.from_dict(served)  # from_url would leave the document's own path out
    session = requests.Session()
    tally: Counter[str] = Counter()
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: schemathesis.Case) -> None:
                problems.extend(_problems(case, service.base_url, session, tally))

            try:
                fuzz()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
                assert mode == GenerationMode.NEGATIVE, operation.label
                tally["operations_without_negative_cases"] += 1
    print(f"fuzzed {len(operations)} operations ({[o.label for o in operations]}): {dict(tally)}")
    assert len(operations) == sum(len(set(item) - {"parameters"}) for item in served["paths"].values()) >= 7
    assert tally["5xx"] == 0
    assert tally["requests"] >= len(operations) * 2
    assert not problems, "\n".join(sorted(set(problems))[:20])
    assert "unhandled_error" not in service.logs()
