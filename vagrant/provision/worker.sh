#!/usr/bin/env bash
# A worker node: kubeadm join with the bootstrap token the control plane was given.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root
need_env CONTROL_PLANE_IP KUBEADM_TOKEN

if [ -f "$NODE_KUBECONFIG" ]; then
  say "joined before ($NODE_KUBECONFIG exists)"
  exit 0
fi
wait_for 600 "the control plane at $CONTROL_PLANE_IP:6443" \
  curl -fsk "https://$CONTROL_PLANE_IP:6443/readyz"
say "kubeadm join $CONTROL_PLANE_IP:6443"
# The lab's one shortcut: the CA is not pinned (--discovery-token-unsafe-skip-ca-verification),
# as the workers cannot know its hash before the control plane exists. The host-only network
# carries it; do not copy this to a real cluster (use --discovery-token-ca-cert-hash).
kubeadm join "$CONTROL_PLANE_IP:6443" --node-name "$(hostname)" --token "$KUBEADM_TOKEN" \
  --discovery-token-unsafe-skip-ca-verification
