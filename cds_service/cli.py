"""`cds-service serve | triage | check-content | safety | examples | openapi | db | report`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from marshmallow import ValidationError

from cds_service import __version__
from cds_service.caller import Caller
from cds_service.domain.fhir_time import parse_fhir_datetime
from cds_service.errors import ClientError
from cds_service.fhir.prefetch import bundle_resources
from cds_service.hooks.response_check import InvalidTemplate
from cds_service.hooks.schemas import HookRequestSchema
from cds_service.hooks.services import SERVICES, ServiceDefinition
from cds_service.migrations import SchemaBehind
from cds_service.safety.commands import add_content_commands
from cds_service.server import serve
from cds_service.settings import ENV_NAMES, SettingsError, load_settings
from cds_service.store_commands import add_store_commands
from cds_service.validation import dotted, first_error
from cds_service.yaml_source import ContentError

log = logging.getLogger("cds_service")


def _patient_from(resources: list[Any]) -> str | None:
    for resource in resources:
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            return resource.get("id")
    for resource in resources:
        reference = ((resource or {}).get("subject") or {}).get("reference", "")
        if reference.startswith("Patient/"):
            return reference.removeprefix("Patient/")
    return None


def _hook_request(body: Any, patient: str | None) -> dict[str, Any]:
    """The CDS Hooks request a file stands for: the request itself, or a patient-view call prefetching a Bundle."""
    if not isinstance(body, dict):
        kind = "a JSON array" if isinstance(body, list) else f"a JSON {type(body).__name__}"
        raise ValueError(f"is {kind}: expected a FHIR Bundle or a CDS Hooks request (a JSON object)")
    if body.get("resourceType") == "Bundle":
        patient = patient or _patient_from(bundle_resources(body))
        if not patient:
            raise ValueError("cannot tell which patient: pass --patient ID")
        return {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/cds-service-cli", "patientId": patient},
            "prefetch": {"observations": body},
        }
    if "context" in body and "hook" in body:
        if patient and isinstance(body["context"], dict):
            body = {**body, "context": {**body["context"], "patientId": patient}}
        return body
    raise ValueError("is neither a Bundle nor a hook request: must be a FHIR Bundle or a CDS Hooks request")


def read_json_file(path: Path) -> Any:
    """A JSON file's content; ValueError in words when it is empty, has a BOM or is not JSON."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raise ValueError("starts with a UTF-8 byte order mark (BOM): save it as UTF-8 without BOM")
    if not raw.strip():
        raise ValueError("is empty: expected a FHIR Bundle or a CDS Hooks request as JSON")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def _service_for(hook: str) -> ServiceDefinition:
    service = next((s for s in SERVICES if s.hook == hook), None)
    if service is None:
        raise ValueError(f"no service answers the hook {hook!r}")
    return service


def triage_file(args: argparse.Namespace) -> int:
    from cds_service.answer import answer
    from cds_service.runtime import Engine

    settings = load_settings(for_server=False)
    engine = Engine.build(settings)
    now = parse_fhir_datetime(args.now) if args.now else datetime.now(UTC)
    if now is None:
        raise SystemExit(f"--now must be an ISO 8601 date-time, got {args.now!r}")
    try:
        hook_request = _hook_request(read_json_file(Path(args.file)), args.patient)
        service = _service_for(str(hook_request.get("hook")))
        request = HookRequestSchema().load(hook_request)
        result = answer(engine, service, request, Caller(None, ()), now)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return 2
    except ValidationError as exc:
        path, message = first_error(exc.messages)
        sys.stderr.write(f"{args.file}: {dotted(path) or '(body)'}: {message}\n")
        return 2
    except ClientError as exc:
        sys.stderr.write(f"{args.file}: {exc.message}\n")
        return 2
    if args.format == "json":
        sys.stdout.write(json.dumps(result.body, indent=2) + "\n")
    else:
        sys.stdout.write(_as_text(result.body["cards"]))
    return 0


_markdown = MarkdownIt("commonmark", {"html": False})


def markdown_as_text(text: str) -> str:
    """A card's markdown as plain text for a terminal: headings and paragraphs as lines, list items as "- ",
    emphasis and escapes removed."""
    lines: list[str] = []
    depth = 0
    for token in _markdown.parse(text):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
            lines += [""] if depth == 0 else []
        elif token.type in ("paragraph_close", "heading_close") and depth == 0:
            lines.append("")
        elif token.type == "inline":
            words = "".join(
                " " if child.type in ("softbreak", "hardbreak") else child.content for child in token.children or []
            )
            lines.append(("  " * (depth - 1) + "- " if depth else "") + words)
    return "\n".join(lines).strip() + "\n"


def _as_text(cards: list[dict[str, Any]]) -> str:
    if not cards:
        return "No cards.\n"
    out = []
    for card in cards:
        out.append(f"[{card['indicator'].upper()}] {card['summary']}\n{markdown_as_text(card.get('detail', ''))}")
    return "\n".join(out)


PUBLIC_SANDBOX = "https://sandbox.cds-hooks.org"


def _examples() -> Any:
    from cds_service.knowledge.examples import load_examples

    return load_examples(load_settings(for_server=False).content_dir / "examples")


def sandbox_url(sandbox: str, fhir_server: str, patient_id: str, service_url: str) -> str:
    from urllib.parse import urlencode

    discovery = f"{service_url}/cds-services"
    query = {"fhirServiceUrl": fhir_server, "patientId": patient_id, "serviceDiscoveryURL": discovery}
    return f"{sandbox.rstrip('/')}/?{urlencode(query)}"


def examples_list(_: argparse.Namespace) -> int:
    for example in _examples().by_id.values():
        sys.stdout.write(f"{example.id:<16} patient {example.patient_id:<24} {example.title}\n")
    return 0


def examples_request(args: argparse.Namespace) -> int:
    from cds_service.knowledge.examples import hook_request

    examples = _examples()
    if args.example not in examples.by_id:
        sys.stderr.write(f"no example {args.example!r}; `cds-service examples list` shows them\n")
        return 2
    request = hook_request(examples.shifted(args.example, datetime.now(UTC)), args.hook)
    sys.stdout.write(json.dumps(request, indent=2) + "\n")
    return 0


def examples_load(args: argparse.Namespace) -> int:
    from cds_service.fhir.upload import UploadRefused, post_transaction

    examples = _examples()
    service_url = (args.service or load_settings(for_server=False).base_url).rstrip("/")
    now = datetime.now(UTC)
    for example in examples.by_id.values():
        try:
            post_transaction(args.fhir_server, examples.shifted(example.id, now), args.token)
        except UploadRefused as exc:
            sys.stderr.write(f"example {example.id!r} not loaded: {exc}\n")
            return 1
        url = sandbox_url(args.sandbox, args.fhir_server, example.patient_id, service_url)
        sys.stdout.write(f"{example.title}\n  patient {example.patient_id}; open {url}\n")
    return 0


def print_openapi(_: argparse.Namespace) -> int:
    from cds_service.hooks.openapi import openapi_yaml

    sys.stdout.write(openapi_yaml())
    return 0


def _environment_help() -> str:
    names = "\n".join(f"  {name}" for name in sorted(ENV_NAMES.values()))
    return f"environment variables (README, section Configuration):\n{names}\n"


def _examples_parser(commands: Any) -> None:
    p = commands.add_parser("examples", help="the example patients of content/examples/")
    actions = p.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list the example patients").set_defaults(run=examples_list)
    q = actions.add_parser("request", help="print a CDS Hooks request for one example, its times shifted to now")
    q.add_argument("example")
    q.add_argument("--hook", choices=[s.hook for s in SERVICES], default="patient-view")
    q.set_defaults(run=examples_request)
    q = actions.add_parser("load", help="load every example into a FHIR server (transaction POST)")
    q.add_argument("--fhir-server", required=True, help="the FHIR server's base URL")
    q.add_argument("--token", help="bearer token for the FHIR server")
    q.add_argument("--sandbox", default=PUBLIC_SANDBOX, help=f"CDS Hooks sandbox to link to (default {PUBLIC_SANDBOX})")
    q.add_argument("--service", help="this service's public URL (default: CDS_PUBLIC_URL)")
    q.set_defaults(run=examples_load)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cds-service",
        description=__doc__,
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the production server (gunicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=0, help="default: CDS_WORKERS or the number of CPUs (min 2)")
    p.add_argument("--threads", type=int, default=0, help="threads per worker (default: CDS_THREADS or 8)")
    p.set_defaults(run=serve)
    p = commands.add_parser("triage", help="triage a FHIR Bundle or a CDS Hooks request offline")
    p.add_argument("file")
    p.add_argument("--now", help="evaluation time, ISO 8601 (default: now)")
    p.add_argument("--patient", help="patient id (default: from the request or the Bundle)")
    p.add_argument("--format", choices=["json", "text"], default="text")
    p.set_defaults(run=triage_file)
    add_content_commands(commands)  # check-content, safety
    p = commands.add_parser("openapi", help="print the OpenAPI document generated from the schemas")
    p.set_defaults(run=print_openapi)
    _examples_parser(commands)
    add_store_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ContentError, InvalidTemplate, SettingsError, SchemaBehind) as exc:
        sys.stderr.write(f"cds-service: {exc}\n")
        return 2
