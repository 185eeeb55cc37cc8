"""`tulle convert --verify` end to end on loopback (no root): both sides served by real
waypoint processes with echo backends. A realistic multi-annotation set passes (exit 0,
with requests actually compared); a set built to differ reports the two known differences
(exit 3); annotations are never reported the same; bad input is refused before anything
starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.convert_verify import Processes
from agent.cli.main import cli
from gatewayapi.ingress.sides import VerifyError

HERE = Path(__file__).resolve().parent
REALISTIC = HERE / "verify_realistic.yaml"

DIFFER = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: web}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: fallback, port: {number: 8080}}}
  rules:
  - host: app.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 8080}}}}
  - host: "*.apps.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 8080}}}}
"""


def tulle(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, ["convert", *args], input=input)


def results(output: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    body = json.loads(output)
    return {
        (r["request"]["scheme"], r["request"]["host"], r["request"]["path"],
         json.dumps(r["request"]["headers"])): r
        for r in body["results"]
    }


def test_a_realistic_multi_annotation_set_passes_and_compares_what_it_can() -> None:
    result = tulle("--verify", "-f", str(REALISTIC), "-o", "json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["summary"]["different"] == 0
    assert body["summary"]["same"] >= 50  # requests really compared, not all unchecked
    got = results(result.stdout)
    # compared and the same: each checked for the backend and the path it saw
    for key, backend, path in [
        (("https", "www.example.com", "/any/deeper", "{}"), "store/web:8080", "/any/deeper"),
        (("https", "www.example.com", "/healthz", "{}"), "store/web:8080", "/healthz"),
        (("https", "www.example.com", "/healthz/", "{}"), "store/web:8080", "/healthz/"),
        (("http", "api.example.com", "/v2/deeper", "{}"), "store/api-v2:80", "/v2/deeper"),
        (("http", "api.example.com", "/docs", "{}"), "store/docs:80", "/docs"),
        (("http", "admin.example.com", "/ui/login", "{}"), "store/login:80", "/ui/login"),
        (("https", "admin.example.com", "/ui/login/", "{}"), "store/admin:80", "/ui/login/"),
    ]:
        outcome = got[key]
        assert outcome["verdict"] == "same", key
        assert (outcome["ingress"]["backend"], outcome["ingress"]["backend path"]) == (backend, path)
        assert outcome["gateway"]["status"] == "200"
    # a path of no rule on a host without defaultBackend: 404 on both sides
    assert got[("http", "api.example.com", "/v2x", "{}")]["ingress"]["status"] == "404"
    # what depends on an annotation is never "same": the Ingress side does not apply it
    redirect = got[("http", "www.example.com", "/static", "{}")]
    assert redirect["verdict"] == "unchecked"
    assert "ssl-redirect" in redirect["reason"]
    assert redirect["gateway"]["status"] == "308" and redirect["ingress"]["status"] == "200"
    # ssl-redirect alone has a fixed answer: the Gateway is held to ingress-nginx's 308
    healthz = got[("http", "www.example.com", "/healthz", "{}")]
    assert healthz["verdict"] == "same" and "documented answer" in healthz["reason"]
    assert healthz["gateway"]["status"] == "308"
    assert healthz["gateway"]["location"] == "https://www.example.com/healthz"
    canary = got[("https", "www.example.com", "/static", json.dumps({"X-Canary": "always"}))]
    assert canary["verdict"] == "unchecked"
    assert canary["gateway"]["backend"] == "store/static-next:80"
    preflight = [r for r in json.loads(result.stdout)["results"]
                 if r["request"]["method"] == "OPTIONS"]
    assert preflight and all(r["verdict"] == "unchecked" for r in preflight)
    assert any("access-control-allow-origin" in r["gateway"] for r in preflight)


def test_a_set_built_to_differ_reports_each_difference(tmp_path: Path) -> None:
    requests = tmp_path / "requests.yaml"
    requests.write_text("- {host: app.example.com, path: /elsewhere, headers: {X-User: a}}\n")
    result = tulle("--verify", "-f", "-", "--requests", str(requests), input=DIFFER)
    assert result.exit_code == 3, result.output
    out = result.stdout
    # defaultBackend: the Ingress answers a listed host's unmatched path, the Gateway 404s
    assert "DIFFERENT GET http://app.example.com/verify-unmatched" in out
    assert "status: Ingress 200  |  Gateway 404" in out
    assert "backend: Ingress web/fallback:8080  |  Gateway -" in out
    # the user's request too
    assert "DIFFERENT GET http://app.example.com/elsewhere X-User: a  (user request)" in out
    # a wildcard: Ingress takes one label, Gateway API any number
    assert "DIFFERENT GET http://two.one.apps.example.com/" in out
    assert "backend: Ingress web/fallback:8080  |  Gateway web/app:8080" in out
    assert "DIFFERENT GET http://one.apps.example.com/" not in out
    assert "DIFFERENT GET http://app.example.com/api " not in out
    assert out.rstrip().splitlines()[-1].startswith("verify: ")
    assert " 0 unchecked" in out


def test_bad_input_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = tulle("--requests", "r.yaml", "-f", "-", input=DIFFER)
    assert result.exit_code == 2 and "--requests goes with --verify" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {host: a.example, path: nope}\n")
    result = tulle("--verify", "-f", "-", "--requests", str(bad), input=DIFFER)
    assert result.exit_code == 1 and "[0].path: must start with /" in result.output
    result = tulle("--verify", "-f", "-", "--requests", str(tmp_path / "missing.yaml"),
                   input=DIFFER)
    assert result.exit_code == 1 and "missing.yaml" in result.output
    two = DIFFER + "---\n" + DIFFER.replace("name: site", "name: other").replace(
        "ingressClassName: nginx", "ingressClassName: other")
    result = tulle("--verify", "-f", "-", input=two)
    assert result.exit_code == 1 and "one IngressClass at a time" in result.output


def test_a_process_that_fails_to_start_is_named_with_its_error() -> None:
    procs = Processes()
    try:
        with pytest.raises(VerifyError, match=r"the thing exited with 4: .*broken on purpose"):
            procs.start(
                ["-c", "import sys; print('broken on purpose', file=sys.stderr); sys.exit(4)"],
                {}, "the thing", [1],
            )
    finally:
        procs.stop()
    assert procs.running == []


def test_https_to_a_host_without_tls_is_no_answer_on_both_sides(tmp_path: Path) -> None:
    requests = tmp_path / "requests.json"
    requests.write_text(json.dumps([{"host": "app.example.com", "path": "/api", "scheme": "https"}]))
    result = tulle("--verify", "-f", "-", "--requests", str(requests), "-o", "json", input=DIFFER)
    assert result.exit_code == 3, result.output  # the set's own differences
    got = results(result.stdout)[("https", "app.example.com", "/api", "{}")]
    assert got["verdict"] == "same"
    assert got["ingress"]["status"] == got["gateway"]["status"] == "no answer"
    assert got["ingress"]["error"] and got["gateway"]["error"]


def test_lab_options_are_checked_before_anything_is_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = tulle("--lab", "x", "-f", "-", input=DIFFER)
    assert result.exit_code == 2 and "--lab goes with --verify" in result.output
    result = tulle("--verify", "--keep", "-f", "-", input=DIFFER)
    assert result.exit_code == 2 and "--keep goes with --verify --lab" in result.output
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))  # no lab is up here
    result = tulle("--verify", "--lab", "nolab", "-f", "-", input=DIFFER)
    assert result.exit_code == 1 and "lab 'nolab' is not up" in result.output
