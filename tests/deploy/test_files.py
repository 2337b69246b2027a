"""The deploy files parse, and the compose file and the Kubernetes manifests are valid against
their published JSON schemas (compose-spec vendored under schemas/, the Kubernetes API schemas
bundled by kubernetes-validate): offline, in CI."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import typer

from mercato.cli.main import GRACEFUL_STOP_SECONDS
from mercato.cli.main import app as cli
from mercato.config import Settings
from tests.deploy.support import (
    COMPOSE,
    DASHBOARD,
    DEPLOY,
    KUBERNETES,
    KUBERNETES_VERSION,
    SCHEMAS,
    kubernetes_documents,
    load_yaml_documents,
)

kubernetes_validate = pytest.importorskip("kubernetes_validate")

# Variables that are not Settings fields but are read elsewhere: CLI options (createsuperuser's
# password), uvicorn's trusted proxies.
OTHER_VARIABLES = {"MERCATO_ADMIN_PASSWORD"}
SETTINGS_VARIABLES = {f"MERCATO_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda path: str(path.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path) -> None:  # type: ignore[no-untyped-def]
    assert load_yaml_documents(path), f"{path} is empty"


def test_the_dashboard_is_json_with_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["panels"]


def _compose() -> dict[str, Any]:
    return load_yaml_documents(COMPOSE)[0]


def test_the_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors)


def test_the_compose_schema_rejects_a_broken_file() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = _compose()
    broken["services"]["serve-1"]["depends_on"] = 5
    broken["services"]["nginx"]["unknown_key"] = True
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_the_compose_file_runs_the_scaled_form() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis", "nats", "rabbitmq", "minio", "migrate", "serve-1", "serve-2", "worker",
                 "scheduler", "nginx"):
        assert name in services, name
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert services["migrate"]["command"] == ["mercato", "migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("serve-1", "serve-2", "worker", "scheduler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        environment = services[name]["environment"]
        assert environment["MERCATO_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert environment["MERCATO_BROKER_URL"].startswith("${MERCATO_BROKER_URL:-nats://"), name
        assert environment["MERCATO_STORAGE_URL"].startswith("s3://"), name
        assert "env_file" not in services[name], "configuration is environment variables only"
    # serve's health check is readiness (it gates nginx); workers answer liveness on their metrics port
    for name in ("serve-1", "serve-2"):
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services["nginx"]["depends_on"][name]["condition"] == "service_healthy"
    for name in ("worker", "scheduler"):
        assert "127.0.0.1:9100/healthz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["environment"]["MERCATO_METRICS_PORT"] == "9100"


def _seconds(value: str) -> float:
    assert value.endswith("s"), value
    return float(value[:-1])


def test_compose_gives_processes_time_to_stop() -> None:
    services = _compose()["services"]
    for name in ("serve-1", "worker", "scheduler"):
        assert GRACEFUL_STOP_SECONDS < _seconds(services[name]["stop_grace_period"]) <= 10


def _environment_names() -> set[str]:
    names: set[str] = set()
    for service in _compose()["services"].values():
        names |= set(service.get("environment", {}))
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0])
    for _path, document in kubernetes_documents():
        if document["kind"] in ("ConfigMap", "Secret"):
            names |= set(document.get("data", {})) | set(document.get("stringData", {}))
        for container in _containers(document):
            names |= {variable["name"] for variable in container.get("env", [])}
    return names


def test_every_mercato_variable_is_a_real_setting() -> None:
    names = {name for name in _environment_names() if name.startswith("MERCATO_") or name in OTHER_VARIABLES}
    unknown = names - SETTINGS_VARIABLES - OTHER_VARIABLES
    # deploy/.env's own variables for compose interpolation, not read by Mercato
    unknown -= {"MERCATO_IMAGE"}
    assert not unknown, f"not Mercato settings: {sorted(unknown)}"
    assert {"MERCATO_DATABASE_URL", "MERCATO_REDIS_URL", "MERCATO_BROKER_URL", "MERCATO_STORAGE_URL",
            "MERCATO_SECRET_KEY", "MERCATO_SIGNING_KEY"} <= names


def _commands() -> list[list[str]]:
    commands = [service["command"] for service in _compose()["services"].values()
                if str(service.get("image", "")).startswith("${MERCATO_IMAGE") and "command" in service]
    commands += [container["command"] for _path, document in kubernetes_documents()
                 for container in _containers(document)]
    return commands


def test_every_command_is_one_the_cli_has() -> None:
    group = typer.main.get_command(cli)
    assert isinstance(getattr(group, "commands", None), dict)
    commands = _commands()
    assert len(commands) >= 8
    for command in commands:
        assert command[0] == "mercato", command
        sub = group.commands[command[1]]  # type: ignore[attr-defined]
        options = {option for parameter in sub.params for option in
                   (*parameter.opts, *getattr(parameter, "secondary_opts", []))}
        for word in command[2:]:
            if word.startswith("--"):
                assert word in options, f"{command}: mercato {command[1]} has no {word}"


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    return template["spec"]["containers"] if template else []


@pytest.mark.parametrize("item", kubernetes_documents(), ids=lambda item: f"{item[0].name}:{item[1]['kind']}")
def test_every_kubernetes_manifest_is_valid_against_the_api_schema(item) -> None:  # type: ignore[no-untyped-def]
    _path, document = item
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schema_rejects_a_broken_manifest() -> None:
    document = next(document for _path, document in kubernetes_documents()
                    if document["kind"] == "Deployment" and document["metadata"]["name"] == "mercato-serve")
    broken = json.loads(json.dumps(document))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def _by_name() -> dict[str, dict[str, Any]]:
    return {f"{document['kind']}/{document['metadata']['name']}": document
            for _path, document in kubernetes_documents()}


def test_the_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = load_yaml_documents(KUBERNETES / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}


def test_kubernetes_processes_have_probes_resources_and_time_to_stop() -> None:
    objects = _by_name()
    for name, port, readiness in (("mercato-serve", "http", "/readyz"), ("mercato-worker", "metrics", "/healthz"),
                                  ("mercato-scheduler", "metrics", None)):
        pod = objects[f"Deployment/{name}"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}, name
        if readiness:
            assert container["readinessProbe"]["httpGet"]["path"] == readiness, name
        assert set(container["resources"]) == {"requests", "limits"}, name
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        # the orchestrator's SIGKILL comes after the preStop pause and the process's own stop (<= 5 s)
        assert pre_stop + 5 <= pod["terminationGracePeriodSeconds"] <= 15, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
    scheduler = objects["Deployment/mercato-scheduler"]["spec"]
    assert scheduler["replicas"] == 1 and scheduler["strategy"]["type"] == "Recreate"
    for name in ("mercato-serve", "mercato-worker"):
        assert objects[f"PodDisruptionBudget/{name}"]["spec"]["minAvailable"] >= 1
    assert objects["HorizontalPodAutoscaler/mercato-serve"]["spec"]["scaleTargetRef"]["name"] == "mercato-serve"
    assert objects["Job/mercato-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "mercato", "migrate"]
    backend = objects["Ingress/mercato"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "mercato-serve" and "Service/mercato-serve" in objects
