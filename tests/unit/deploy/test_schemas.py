"""Every rendered object validates against its Kubernetes schema for each supported minor
(1.30 to 1.34: kubernetes-validate, strict, so an unknown or misspelt field fails too); the
GatewayClass against the Gateway API CRD's schema; Tulle's CRDs are structural and print
columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lab import gateway_crds
from lab.apiserver import crds
from lab.apiserver.schema import validate as validate_by_crd
from tests.unit.deploy.rendered import OVERLAYS, one, render

KUBERNETES = ("1.30", "1.31", "1.32", "1.33", "1.34")
# Custom resources: validated against their own CRD's schema below.
CUSTOM_GROUPS = ("gateway.networking.k8s.io/",)


def _schema_of_crd(kind: str) -> dict[str, Any]:
    [crd] = [c for c in gateway_crds.manifests(gateway_crds.CRD_DIR)
             if c["spec"]["names"]["kind"] == kind]
    [served] = [v for v in crd["spec"]["versions"] if v["storage"]]
    return dict(served["schema"]["openAPIV3Schema"])


def _builtin(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if not o["apiVersion"].startswith(CUSTOM_GROUPS)]


@pytest.mark.parametrize("minor", KUBERNETES)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_object_validates_strictly(overlay: str, minor: str) -> None:
    objs = _builtin(render(overlay))
    assert {o["kind"] for o in objs} >= {"DaemonSet", "Deployment", "ClusterRole", "Service",
                                         "CustomResourceDefinition", "Namespace"}
    failures = []
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, minor, strict=True)
        except kubernetes_validate.ValidationError as err:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {err}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        # a misspelt field: strict validation knows every field of a pod spec
        (("spec", "template", "spec", "containers", 0, "imagePullPolcy"), "Never"),
        # a wrong type
        (("spec", "updateStrategy", "rollingUpdate", "maxSurge"), [1]),
    ],
)
def test_a_broken_daemonset_is_refused(path: tuple[Any, ...], value: Any) -> None:
    """The check above can fail: the same object with one field broken does not pass."""
    daemonset = one(render("production"), "DaemonSet", "tulle-agent")
    kubernetes_validate.validate(daemonset, "1.30", strict=True)
    node: Any = daemonset
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, "1.30", strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crds(overlay: str) -> None:
    custom = [o for o in render(overlay) if o not in _builtin(render(overlay))]
    assert [o["kind"] for o in custom] == ["GatewayClass"]
    for obj in custom:
        assert validate_by_crd(_schema_of_crd(obj["kind"]), obj) == []
    broken = {**custom[0], "spec": {"description": "no controllerName"}}
    assert validate_by_crd(_schema_of_crd("GatewayClass"), broken) != []


def _tulle_crds(overlay: str) -> list[dict[str, Any]]:
    return [o for o in render(overlay) if o["kind"] == "CustomResourceDefinition"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tulle_crds_are_structural_and_print_columns(overlay: str) -> None:
    found = _tulle_crds(overlay)
    assert {c["spec"]["names"]["kind"] for c in found} == set(gateway_crds.TULLE_KINDS)
    for crd in found:
        assert crds.problems(crd) == [], crd["metadata"]["name"]
        for version in crd["spec"]["versions"]:
            columns = {c["name"] for c in version.get("additionalPrinterColumns", [])}
            assert "Age" in columns and len(columns) >= 2, crd["metadata"]["name"]


def test_the_rendered_crds_are_the_generated_ones() -> None:
    """kustomize adds nothing to the generated CRDs (deploy/crds/generate.py writes them)."""
    generated = [d for p in sorted(gateway_crds.TULLE_CRD_DIR.glob("*.yaml"))
                 for d in yaml.safe_load_all(Path(p).read_text()) if d]
    assert _tulle_crds("production") == generated


def test_a_schema_without_types_is_not_structural() -> None:
    crd = _tulle_crds("production")[0]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"].pop("type")
    assert any("type" in str(p) for p in crds.problems(crd))
