"""bench/l4/kubeproxy.py: kube-proxy's iptables layout (v1.28+) for ClusterIP and NodePort
Services, as iptables-restore text."""

from __future__ import annotations

import re

import pytest

from bench.l4.kubeproxy import (
    Endpoint,
    RuleError,
    ServicePort,
    ext_chain,
    restore_text,
    sep_chain,
    svc_chain,
)

EP = (Endpoint("10.244.2.5", 8080),)
CIDR = "10.244.0.0/16"


def port(name: str, vip: str, node_port: int | None = None,
         endpoints: tuple[Endpoint, ...] = EP) -> ServicePort:
    return ServicePort("bench", name, "http", vip, 80, endpoints, node_port=node_port)


def nat(text: str) -> list[str]:
    return text.split("*nat\n", 1)[1].splitlines()


def rules_of(text: str, chain: str) -> list[str]:
    return [line for line in nat(text) if line.startswith(f"-A {chain} ")]


def test_chain_names_are_kube_proxys_hash() -> None:
    """The default/kubernetes:https Service's chain on every kube-proxy cluster."""
    api = ServicePort("default", "kubernetes", "https", "10.96.0.1", 443, EP)
    assert svc_chain(api) == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert ext_chain(api) == "KUBE-EXT-NPX46M4PTMTKRN6Y"
    assert re.fullmatch(r"KUBE-SEP-[A-Z2-7]{16}", sep_chain(api, EP[0]))


def test_nodeport_rules_follow_every_cluster_ip_rule() -> None:
    services = [port("a", "10.96.1.1", 20001), port("b", "10.96.1.2"),
                port("target", "10.96.200.10", 20000)]
    text = restore_text(services, CIDR)
    kube_services = rules_of(text, "KUBE-SERVICES")
    assert [r.split(" -j ")[-1] for r in kube_services] == [
        svc_chain(services[0]), svc_chain(services[1]), svc_chain(services[2]), "KUBE-NODEPORTS"]
    assert "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS" in kube_services[-1]
    assert rules_of(text, "KUBE-NODEPORTS") == [
        f'-A KUBE-NODEPORTS -p tcp -m comment --comment "bench/a:http" -m tcp --dport 20001 '
        f"-j {ext_chain(services[0])}",
        f'-A KUBE-NODEPORTS -p tcp -m comment --comment "bench/target:http" -m tcp '
        f"--dport 20000 -j {ext_chain(services[2])}",
    ]


def test_external_chain_masquerades_then_balances() -> None:
    sp = port("target", "10.96.200.10", 20000)
    text = restore_text([sp], CIDR)
    ext = ext_chain(sp)
    assert f":{ext} - [0:0]" in nat(text)
    assert rules_of(text, ext) == [
        f'-A {ext} -m comment --comment "masquerade traffic for bench/target:http external '
        'destinations" -j KUBE-MARK-MASQ',
        f"-A {ext} -j {svc_chain(sp)}",
    ]
    svc_rules = rules_of(text, svc_chain(sp))
    assert svc_rules[0].startswith(f"-A {svc_chain(sp)} ! -s {CIDR} -d 10.96.200.10/32")
    assert svc_rules[-1].endswith(f"-j {sep_chain(sp, EP[0])}")
    assert "MASQUERADE --random-fully" in text


def test_cluster_ip_service_has_no_external_chain() -> None:
    sp = port("plain", "10.96.1.1")
    text = restore_text([sp], CIDR)
    assert ext_chain(sp) not in text
    assert rules_of(text, "KUBE-NODEPORTS") == []


def test_endpoints_are_picked_with_kube_proxys_probabilities() -> None:
    eps = tuple(Endpoint(f"10.244.2.{i}", 8080) for i in (1, 2, 3))
    sp = port("three", "10.96.1.1", 20001, eps)
    picks = [r for r in rules_of(restore_text([sp], CIDR), svc_chain(sp)) if "KUBE-SEP-" in r]
    assert ["0.3333333333" in picks[0], "0.5000000000" in picks[1],
            "statistic" not in picks[2]] == [True, True, True]


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([port("empty", "10.96.1.1", 20001, ())], "bench/empty:http has no endpoints"),
        ([port("a", "10.96.1.1", 20001), port("b", "10.96.1.2", 20001)],
         "node port 20001/tcp is both bench/a:http's and bench/b:http's"),
        ([port("a", "10.96.1.1", 70000)], "node port 70000 outside 1-65535"),
    ],
)
def test_input_kube_proxy_would_not_render_is_refused(
    services: list[ServicePort], message: str
) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        restore_text(services, CIDR)
