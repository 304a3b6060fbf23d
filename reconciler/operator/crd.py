"""The ``Site`` CustomResourceDefinition, generated from the spec's pydantic models.

``deploy/kubernetes/crd-site.yaml`` is written by ``reconciler operator crd``
and a test keeps it current, as for ``schemas/``. pydantic's JSON Schema is
turned into a *structural* OpenAPI v3 schema as the apiserver requires: ``$ref``
inlined, ``anyOf [X, null]`` folded into ``X`` with ``nullable``, titles and
``additionalProperties: false`` dropped (unknown fields are pruned instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.operator.spec import GROUP, KIND, PLURAL, VERSION, SiteSpec

CRD_FILE = Path("deploy/kubernetes/crd-site.yaml")
_DROP = {"title", "$defs", "additionalProperties", "format"}


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    options = node.get("anyOf")
    if isinstance(options, list):
        real = [option for option in options if option.get("type") != "null"]
        if len(real) == 1 and len(real) < len(options):
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            folded = _structural({**real[0], **rest}, defs)
            folded["nullable"] = True
            return folded
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            result[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "default" and value is None:
            continue
        else:
            result[key] = _structural(value, defs)
    if result.get("type") == "object" and "properties" not in result:
        result.setdefault("x-kubernetes-preserve-unknown-fields", True)
    if "const" in result:
        result["enum"] = [result.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        # JSON Schema's numeric form -> OpenAPI 3.0's boolean flag beside the bound.
        if isinstance(result.get(bound), (int, float)) and not isinstance(result[bound], bool):
            result[plain] = result.pop(bound)
            result[bound] = True
    return result


def spec_schema() -> dict[str, Any]:
    raw = SiteSpec.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def site_crd() -> dict[str, Any]:
    """The CRD as a dict, ready for YAML."""
    status = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "observedGeneration, revisions, conditions (Ready, Reconciling, "
        "Stalled), per-target results, inventory counts",
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": "Ready",
                            "type": "string",
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                        },
                        {
                            "name": "Revision",
                            "type": "string",
                            "jsonPath": ".status.lastAppliedRevision",
                        },
                        {
                            "name": "Status",
                            "type": "string",
                            "priority": 1,
                            "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A site reconciled from a git inventory",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    header = (
        "# Generated by `reconciler operator crd` from reconciler/operator/spec.py; do not edit\n"
    )
    return header + yaml.safe_dump(site_crd(), sort_keys=False, width=100)


def write_crd(path: Path = CRD_FILE) -> bool:
    """Write the CRD; True when the file changed."""
    text = render_crd()
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True
