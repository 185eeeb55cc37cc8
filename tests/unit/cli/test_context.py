"""Which kubeconfig a command uses (pure precedence and merging), and what discovery names."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from agent.cli.context import choose, merge
from agent.cli.discovery import ApiResource, from_crd, group_might_hold, parse_resource_list


def _choose(base: Path, *, flag=None, lab=None, env=None, labs=("lab",), home=False,
            in_cluster=False):
    tmp_path = base / str(len(list(base.iterdir())))  # a fresh state dir each time
    tmp_path.mkdir()
    for name in labs:
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "kubeconfig").write_text("{}")
    home_path = tmp_path / "home-config"
    if home:
        home_path.write_text("{}")
    return choose(flag=flag, lab=lab, env=env or {}, home=home_path, in_cluster=in_cluster,
                  lab_kubeconfig=lambda name: tmp_path / name / "kubeconfig")


def test_precedence(tmp_path: Path):
    everything = {"KUBECONFIG": "/k1:/k2", "TULLE_LAB": "lab"}
    assert _choose(tmp_path, flag="/f", lab="lab", env=everything, home=True).why == "--kubeconfig"
    assert _choose(tmp_path, lab="lab", env=everything).why == "lab 'lab'"
    assert _choose(tmp_path, env=everything).why == "lab 'lab'"  # $TULLE_LAB names a lab
    assert _choose(tmp_path, env={"TULLE_LAB": "lab"}).why == "lab 'lab'"
    kube = _choose(tmp_path, env={"KUBECONFIG": "/k1:/k2"}, home=True)
    assert kube.why == "$KUBECONFIG" and kube.paths == (Path("/k1"), Path("/k2"))
    assert _choose(tmp_path, home=True).why == "lab 'lab'"  # the default lab, when it is up
    assert _choose(tmp_path, labs=(), home=True).why == "~/.kube/config"
    assert _choose(tmp_path, labs=(), in_cluster=True).paths == ()  # in-cluster config


def test_tulle_lab_picks_that_labs_kubeconfig_over_kubeconfig(tmp_path: Path):
    chosen = _choose(tmp_path, labs=("lab", "b"), env={"TULLE_LAB": "b", "KUBECONFIG": "/k"})
    assert chosen.why == "lab 'b'" and chosen.paths[0].parent.name == "b"


def test_a_named_lab_that_is_down_and_no_cluster_at_all_are_errors(tmp_path: Path):
    with pytest.raises(click.ClickException, match="lab 'gone' is not up"):
        _choose(tmp_path, lab="gone")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(click.ClickException, match="no cluster to talk to"):
        _choose(empty, labs=())


def test_merge_first_file_wins_and_relative_paths_follow_their_file(tmp_path: Path):
    first = {"current-context": "a", "contexts": [{"name": "a", "context": {"cluster": "c"}}],
             "clusters": [{"name": "c", "cluster": {"server": "https://one",
                                                    "certificate-authority": "ca.crt"}}]}
    second = {"current-context": "b", "contexts": [{"name": "b", "context": {"cluster": "c"}}],
              "clusters": [{"name": "c", "cluster": {"server": "https://two"}}],
              "users": [{"name": "u", "user": {"client-key": "/abs/key", "tokenFile": "t"}}]}
    merged = merge([(tmp_path / "x" / "one", first), (tmp_path / "y" / "two", second)])
    assert merged["current-context"] == "a"
    assert [c["cluster"]["server"] for c in merged["clusters"]] == ["https://one"]
    assert merged["clusters"][0]["cluster"]["certificate-authority"] == str(
        tmp_path / "x" / "ca.crt"
    )
    assert {c["name"] for c in merged["contexts"]} == {"a", "b"}
    assert merged["users"][0]["user"] == {"client-key": "/abs/key",
                                          "tokenFile": str(tmp_path / "y" / "t")}


CORE = {"groupVersion": "v1", "resources": [
    {"name": "services", "singularName": "service", "namespaced": True, "kind": "Service",
     "shortNames": ["svc"], "verbs": ["get"]},
    {"name": "services/status", "namespaced": True, "kind": "Service"},
]}
APPS = {"groupVersion": "apps/v1", "resources": [
    {"name": "deployments", "singularName": "deployment", "namespaced": True,
     "kind": "Deployment", "shortNames": ["deploy"]}]}


def test_discovery_names_like_kubectl():
    [svc] = parse_resource_list(CORE)  # no subresources
    [deploy] = parse_resource_list(APPS)
    for text in ("svc", "Service", "services", "service", "services.v1", "SVC"):
        assert svc.named_by(text), text
    for text in ("deploy", "deployments.apps", "deployment.v1.apps", "Deployment"):
        assert deploy.named_by(text), text
    assert not deploy.named_by("deployments.extensions")
    assert not svc.named_by("services.apps")
    assert deploy.path("shop", "web") == "/apis/apps/v1/namespaces/shop/deployments/web"
    assert svc.path(None) == "/api/v1/services"
    assert deploy.qualified_kind == "deployment.apps" and svc.qualified_kind == "service"
    assert group_might_hold("apps", "deploy") and group_might_hold("apps", "deploy.v1.apps")
    assert not group_might_hold("batch", "deploy.apps")


def test_a_crd_in_hand_names_its_served_versions():
    crd = {"spec": {"group": "example.com", "scope": "Cluster",
                    "names": {"kind": "Widget", "plural": "widgets"},
                    "versions": [{"name": "v1"}, {"name": "v0", "served": False}]}}
    assert from_crd(crd) == [ApiResource("example.com", "v1", "Widget", "widgets", False)]
