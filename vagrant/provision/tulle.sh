#!/usr/bin/env bash
# On the control plane, once every node has joined: Gateway API CRDs (upstream's standard
# channel), then Tulle from deploy/overlays/production, and wait for it to roll out.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root
need_env EXPECT_NODES GATEWAY_API_VERSION
export KUBECONFIG="$ADMIN_KUBECONFIG"

ready_nodes() {
  kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
    | grep -c '^True$'
}
say "waiting for $EXPECT_NODES Ready nodes"
wait_for 600 "$EXPECT_NODES Ready nodes (kubectl get nodes)" test "$(ready_nodes)" -ge "$EXPECT_NODES"
kubectl get nodes -o wide

say "Gateway API $GATEWAY_API_VERSION CRDs (standard channel)"
kubectl apply --server-side -f \
  "https://github.com/kubernetes-sigs/gateway-api/releases/download/$GATEWAY_API_VERSION/standard-install.yaml"
kubectl wait --for condition=Established --timeout 120s \
  crd/gateways.gateway.networking.k8s.io crd/httproutes.gateway.networking.k8s.io

overlay="$TULLE_SRC/deploy/overlays/production"
[ -f "$overlay/kustomization.yaml" ] || fail "$overlay/kustomization.yaml is missing: the manifests (issue 13) are not in this checkout"
say "Tulle: kubectl apply -k $overlay"
kubectl apply --server-side -k "$overlay"
kubectl -n tulle-system rollout status daemonset/tulle-agent --timeout 300s
kubectl -n tulle-system rollout status deployment/tulle-controller --timeout 300s
kubectl -n tulle-system get daemonsets,deployments,pods -o wide
