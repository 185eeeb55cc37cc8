"""`tulle convert`: files, directories, stdin and the live cluster; output formats; the
report on stderr; exit statuses (0 exact, 3 not exact, 1 bad input, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from agent.model.convert import from_dict

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ingress"

EXACT = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  ingressClassName: nginx
  rules:
    - host: a.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: web, port: {number: 80}}}
"""
NOT_EXACT = EXACT.replace(
    "metadata: {name: web, namespace: shop}",
    "metadata:\n  name: web\n  namespace: shop\n"
    "  annotations: {nginx.ingress.kubernetes.io/auth-url: 'http://auth'}",
)


def tulle(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["convert", *args], input=input)


def test_exact_conversion_exits_0_with_yaml_on_stdout_and_no_report() -> None:
    result = tulle("-f", "-", input=EXACT)
    assert result.exit_code == 0, result.output
    objects = list(yaml.safe_load_all(result.stdout))
    assert [o["kind"] for o in objects] == ["Gateway", "HTTPRoute"]
    for obj in objects:
        from_dict(obj)
    assert result.stderr == ""


def test_not_exact_exits_3_and_reports_on_stderr() -> None:
    result = tulle("-f", "-", input=NOT_EXACT)
    assert result.exit_code == 3
    assert [o["kind"] for o in yaml.safe_load_all(result.stdout)] == ["Gateway", "HTTPRoute"]
    assert "Ingress shop/web: nginx.ingress.kubernetes.io/auth-url: refused:" in result.stderr
    assert "not exact" in result.stderr


def test_json_output_and_json_report() -> None:
    result = tulle("-f", "-", "-o", "json", "--report", "json", input=NOT_EXACT)
    assert result.exit_code == 3
    listed = json.loads(result.stdout)
    assert listed["kind"] == "List" and [o["kind"] for o in listed["items"]] == [
        "Gateway",
        "HTTPRoute",
    ]
    report = json.loads(result.stderr)
    assert report["exact"] is False
    assert report["findings"] == [
        {
            "object": "Ingress shop/web",
            "feature": "nginx.ingress.kubernetes.io/auth-url",
            "severity": "refused",
            "reason": "external authentication is not in HTTPRoute",
        }
    ]


def test_json_report_when_exact() -> None:
    result = tulle("-f", "-", "--report", "json", input=EXACT)
    assert result.exit_code == 0
    assert json.loads(result.stderr) == {"exact": True, "findings": []}


def test_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(EXACT)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(
        EXACT.replace("name: web,", "name: other,").replace("a.example.com", "b.example.com")
    )
    by_dir = tulle("-f", str(tmp_path))
    by_files = tulle("-f", str(tmp_path / "a.yaml"), "-f", str(tmp_path / "sub" / "b.yaml"))
    assert by_dir.exit_code == by_files.exit_code == 0
    assert by_dir.stdout == by_files.stdout
    routes = [
        o["metadata"]["name"] for o in yaml.safe_load_all(by_dir.stdout) if o["kind"] == "HTTPRoute"
    ]
    assert routes == ["web-a.example.com", "other-b.example.com"]  # by (namespace, host)


def test_the_example_set_exits_3_with_every_object_valid() -> None:
    result = tulle("-f", str(EXAMPLES), "--report", "json")
    assert result.exit_code == 3
    for obj in yaml.safe_load_all(result.stdout):
        from_dict(obj)
    severities = {f["severity"] for f in json.loads(result.stderr)["findings"]}
    assert severities == {"approximated", "note"}


def test_gateway_class_and_namespace_options() -> None:
    result = tulle("-f", "-", "--gateway-class", "edge", input=EXACT)
    gw = next(yaml.safe_load_all(result.stdout))
    assert gw["spec"]["gatewayClassName"] == "edge"


def test_malformed_ingress_exits_1_naming_the_field() -> None:
    result = tulle("-f", "-", input=EXACT.replace("pathType: Prefix", "pathType: Regex"))
    assert result.exit_code == 1
    assert (
        "Ingress shop/web: spec.rules[0].http.paths[0].pathType: unsupported value 'Regex'"
        in result.stderr
    )
    assert result.stdout == ""


def test_unreadable_input_exits_1() -> None:
    missing = tulle("-f", "/nonexistent/ingress.yaml")
    assert missing.exit_code == 1 and "no such file or directory" in missing.stderr
    bad_yaml = tulle("-f", "-", input="a: [")
    assert bad_yaml.exit_code == 1 and "<stdin>" in bad_yaml.stderr


def test_usage_errors_exit_2() -> None:
    assert tulle().exit_code == 2
    assert tulle("-f", "-", "--from-cluster").exit_code == 2
    assert tulle("-f", "-", "-n", "shop").exit_code == 2
    assert tulle("-f", "-", "-o", "table").exit_code == 2


def test_from_cluster(run: Any) -> None:
    assert (
        run(
            "apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
        ).exit_code
        == 0
    )
    applied = run("apply", "-f", "-", input=NOT_EXACT)
    assert applied.exit_code == 0, applied.output
    result = run("convert", "--from-cluster", "--report", "json")
    assert result.exit_code == 3, result.output
    kinds = [o["kind"] for o in yaml.safe_load_all(result.stdout)]
    assert kinds == ["Gateway", "HTTPRoute"]
    assert [f["feature"] for f in json.loads(result.stderr)["findings"]] == [
        "nginx.ingress.kubernetes.io/auth-url"
    ]
    other = run("convert", "--from-cluster", "-n", "elsewhere")
    assert other.exit_code == 0 and other.stdout == ""
