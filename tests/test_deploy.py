"""The deployable files, checked without a container engine: the Dockerfile (hadolint, from PyPI, bundles its
binary; and the rules the issue sets), the lock file, compose.yaml and the Kubernetes manifests (validated against
the Kubernetes schemas bundled by kubernetes-validate, strict; probes, ports and settings point at real things)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cds_service.http.app import create_app
from cds_service.settings import ENV_NAMES, Settings

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.30"
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in _documents() if doc["kind"] == kind]


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    folder = tmp_path_factory.mktemp("routes")
    app = create_app(Settings(auth="off", database_url=f"sqlite:///{folder}/cds.db"))
    return {rule.rule for rule in app.url_map.iter_rules()}


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dockerfile_follows_the_rules_of_the_image() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    assert all(re.search(r"@sha256:|:\d+\.\d+\.\d+-slim", image) for image in stages), stages  # pinned, slim
    assert re.search(r"^USER \d+:\d+$", DOCKERFILE, re.MULTILINE), "numeric non-root user"
    assert re.search(r"^HEALTHCHECK .*\\\n\s+CMD \[", DOCKERFILE, re.MULTILINE), "exec-form HEALTHCHECK"
    assert 'VOLUME ["/var/lib/cds-service"]' in DOCKERFILE and "sqlite:////var/lib/cds-service/" in DOCKERFILE
    assert "--require-hashes" in DOCKERFILE and "COPY requirements.lock" in DOCKERFILE


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def test_the_lock_file_pins_every_runtime_dependency_with_hashes() -> None:
    lock = (REPO / "requirements.lock").read_text()
    pinned = {_normal(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, re.MULTILINE)}
    wanted = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {_normal(re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0]) for spec in wanted}
    assert names <= pinned, f"not in requirements.lock (re-run pip-compile): {sorted(names - pinned)}"
    assert lock.count("==") == len(re.findall(r"^\S+==\S+ \\\n\s+--hash=sha256:", lock, re.MULTILINE))


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_each_manifest_is_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_broken_manifest() -> None:
    [deployment] = _by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _container(kind: str) -> dict[str, Any]:
    [workload] = _by_kind(kind)
    [container] = workload["spec"]["template"]["spec"]["containers"]
    return container


def test_probes_and_ports_point_at_real_routes_and_ports(routes: set[str]) -> None:
    container = _container("Deployment")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080}  # the port of the image's CMD
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes and get["port"] in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"  # checks the database, not only the process
    assert {"limits", "requests"} <= set(container["resources"])
    [deployment] = _by_kind("Deployment")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] in routes
    [service] = _by_kind("Service")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)
    [hpa] = _by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_config_maps_secrets_and_settings_fit_together() -> None:
    known = set(ENV_NAMES.values()) | {"PROMETHEUS_MULTIPROC_DIR"}
    maps = {doc["metadata"]["name"]: doc for doc in _by_kind("ConfigMap") + _by_kind("Secret")}
    for kind in ("Deployment", "Job"):
        container = _container(kind)
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            document = maps[ref["name"]]
            names = set(document.get("data", {})) | set(document.get("stringData", {}))
            assert names <= known, f"{ref['name']}: not settings: {sorted(names - known)}"
        assert {env["name"] for env in container.get("env", [])} <= known
    assert _container("Job")["command"] == ["cds-service", "db", "upgrade"]
    [deployment] = _by_kind("Deployment")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    issuers = maps[volume["configMap"]["name"]]["data"]
    mount = next(m for m in _container("Deployment")["volumeMounts"] if m["name"] == volume["name"])
    path = maps["weakness-triage-config"]["data"]["CDS_TRUSTED_ISSUERS"]
    assert path == f"{mount['mountPath']}/{volume['configMap']['items'][0]['path']}"
    assert yaml.safe_load(issuers["trusted-issuers.yaml"])["issuers"]


def test_compose_runs_the_migration_before_the_service(routes: set[str]) -> None:
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["migrate"]["command"] == ["cds-service", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["cds"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["cds"]["ports"] == ["8080:8080"]
    probe = " ".join(services["cds"]["healthcheck"]["test"])
    assert re.search(r"127\.0\.0\.1:8080(/\w+)", probe) and re.search(r":8080(/\w+)", probe)[1] in routes  # type: ignore[index]
    for name in ("migrate", "cds"):
        assert set(services[name]["environment"]) - {"<<"} <= set(ENV_NAMES.values())
    assert set(compose["x-service-env"]) <= set(ENV_NAMES.values())
