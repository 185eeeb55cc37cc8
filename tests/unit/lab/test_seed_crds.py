"""`tulle lab up` installs the Gateway API CRDs through the API, waits until they are
established, and replaces an older lab's; only then are the kinds served."""

from __future__ import annotations

import copy
from pathlib import Path

from lab import gateway_crds
from lab.kubeapi import ApiWriter, connect
from lab.seed import GATEWAY_CLASS, install_crds, seed
from tests.unit.cli.labapi import lab_api


def test_lab_up_installs_the_crds_before_the_gateway_class(tmp_path: Path) -> None:
    with lab_api(tmp_path / "store.db", gateway_api=False) as lab:
        with connect(lab.kubeconfig, "tulle-lab") as client:
            api = ApiWriter(client)
            crds = gateway_crds.manifests()
            assert sorted(install_crds(api, crds)) == sorted(c["metadata"]["name"] for c in crds)
            assert seed(api, [GATEWAY_CLASS]) == ["GatewayClass/tulle"]
            assert install_crds(api, crds) == []  # a restart: nothing to do
            newer = copy.deepcopy(crds)
            routes = next(c for c in newer if c["spec"]["names"]["kind"] == "HTTPRoute")
            routes["spec"]["names"]["shortNames"] = ["hr"]
            assert install_crds(api, newer) == ["httproutes.gateway.networking.k8s.io"]
            live = api.get("CustomResourceDefinition", "", "httproutes.gateway.networking.k8s.io")
            assert live is not None and live["spec"]["names"]["shortNames"] == ["hr"]
        assert lab.store.get("GatewayClass", "", "tulle") is not None
