"""Shared helpers of the deploy checks: where the files are and what they contain."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
RULES = DEPLOY / "prometheus" / "mercato-rules.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "mercato-rules.test.yaml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yaml"
DASHBOARD = DEPLOY / "grafana" / "mercato-dashboard.json"

# The Kubernetes version the manifests are checked against (kubernetes-validate bundles its schemas).
KUBERNETES_VERSION = "1.33.0"


def load_yaml_documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def kubernetes_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every object of every manifest (the kustomization is kustomize's, not the API's)."""
    return [(path, document) for path in sorted(KUBERNETES.glob("*.yaml")) if path.name != "kustomization.yaml"
            for document in load_yaml_documents(path)]


def rule_expressions() -> dict[str, str]:
    """Alert or record name -> PromQL of the rules file."""
    found: dict[str, str] = {}
    for group in load_yaml_documents(RULES)[0]["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule["expr"]
    return found


def recorded_names() -> set[str]:
    return {rule["record"] for group in load_yaml_documents(RULES)[0]["groups"] for rule in group["rules"]
            if "record" in rule}


def dashboard_expressions() -> dict[str, str]:
    """"panel title / refId" -> PromQL of the Grafana dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {f"{panel['title']} / {target['refId']}": target["expr"]
            for panel in dashboard["panels"] for target in panel.get("targets", [])}


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)(?![\w:])")
_NOT_NAMES = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
              "group_right", "inf", "nan", "le", "start", "end"}


def series_names(expression: str) -> set[str]:
    """The series an expression reads: identifiers that are not functions, keywords or labels."""
    text = _STRINGS.sub('""', expression)
    text = _MATCHERS.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in _NAME.finditer(text):
        name = match.group(1)
        following = text[match.end():].lstrip()
        if following.startswith("(") or name.lower() in _NOT_NAMES or re.fullmatch(r"\d.*", name):
            continue
        names.add(name)
    return names
