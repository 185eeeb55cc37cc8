#!/usr/bin/env bash
# The node's pod network: Debian's ptp + host-local with the node's podCIDR (allocated by the
# controller manager), then tulle-cni chained after them (cni/README.md), and a route to each
# other node's podCIDR through its InternalIP, kept up to date by a systemd timer as nodes join.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root

kubeconfig="$NODE_KUBECONFIG"
[ -f "$ADMIN_KUBECONFIG" ] && kubeconfig="$ADMIN_KUBECONFIG"
node="$(hostname)"
pod_cidr() { kubectl --kubeconfig "$kubeconfig" get node "$node" -o jsonpath='{.spec.podCIDR}'; }
wait_for 300 "node $node's podCIDR" test -n "$(pod_cidr 2>/dev/null)"
cidr="$(pod_cidr)"

say "CNI: ptp + host-local ($cidr), then tulle-cni"
mkdir -p /etc/cni/net.d
cat > /etc/cni/net.d/10-tulle.conflist <<CONF
{
  "cniVersion": "1.0.0",
  "name": "k8s-pod-network",
  "plugins": [
    {"type": "ptp", "ipMasq": true, "mtu": 1450,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "tulle-cni", "stateDir": "/var/run/tulle/cni", "attachTimeout": 10}
  ]
}
CONF

say "routes to the other nodes' pods (tulle-pod-routes.timer)"
cat > /usr/local/sbin/tulle-pod-routes <<SCRIPT
#!/bin/sh
# Route every other node's podCIDR through its InternalIP (written by vagrant/provision/cni.sh).
set -eu
kubectl --kubeconfig "$kubeconfig" get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' |
while read -r name cidr ip; do
  [ "\$name" != "$node" ] && [ -n "\$cidr" ] && [ -n "\$ip" ] && ip route replace "\$cidr" via "\$ip"
done
exit 0
SCRIPT
chmod 0755 /usr/local/sbin/tulle-pod-routes
cat > /etc/systemd/system/tulle-pod-routes.service <<'UNIT'
[Unit]
Description=Routes to other nodes' pod CIDRs (Tulle vagrant lab)
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/tulle-pod-routes
UNIT
cat > /etc/systemd/system/tulle-pod-routes.timer <<'UNIT'
[Unit]
Description=Keep routes to other nodes' pod CIDRs current
[Timer]
OnBootSec=10s
OnUnitActiveSec=20s
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now tulle-pod-routes.timer
/usr/local/sbin/tulle-pod-routes
