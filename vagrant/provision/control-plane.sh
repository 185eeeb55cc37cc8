#!/usr/bin/env bash
# The control-plane node: kubeadm init with the pre-shared bootstrap token, kubectl for root
# and the vagrant user. The DaemonSet tolerates the control-plane taint; other pods do not.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root
need_env CONTROL_PLANE_IP POD_CIDR SERVICE_CIDR KUBEADM_TOKEN

if [ ! -f "$ADMIN_KUBECONFIG" ]; then
  say "kubeadm init (pods $POD_CIDR, services $SERVICE_CIDR)"
  kubeadm init --apiserver-advertise-address "$CONTROL_PLANE_IP" --node-name "$(hostname)" \
    --pod-network-cidr "$POD_CIDR" --service-cidr "$SERVICE_CIDR" --token "$KUBEADM_TOKEN" \
    --token-ttl 0
else
  say "kubeadm init done before ($ADMIN_KUBECONFIG exists)"
fi
for home in /root /home/vagrant; do
  [ -d "$home" ] || continue
  mkdir -p "$home/.kube"
  install -m 0600 "$ADMIN_KUBECONFIG" "$home/.kube/config"
  chown -R "$(stat -c %U:%G "$home")" "$home/.kube"
done
wait_for 180 "the API server" kubectl --kubeconfig "$ADMIN_KUBECONFIG" get --raw /readyz
