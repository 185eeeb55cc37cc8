#!/usr/bin/env bash
# Every node: kernel settings, containerd, kubeadm/kubelet/kubectl, the node's kernel headers
# (the DaemonSet mounts /lib/modules and /usr/src for BCC), tulle-cni in the CNI bin dir and
# the Tulle image in containerd. Idempotent: a second `vagrant provision` changes nothing.
set -euo pipefail
# Vagrant uploads this file alone; its helpers are in the rsynced checkout.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. /tulle/vagrant/provision/lib.sh
need_root
need_env NODE_IP KUBERNETES_MINOR

say "kernel: no swap, overlay and br_netfilter, forwarding"
swapoff -a
sed -i '/\sswap\s/s/^/#/' /etc/fstab
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/kubernetes.conf
modprobe overlay
modprobe br_netfilter
cat > /etc/sysctl.d/90-kubernetes.conf <<'CONF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
CONF
sysctl -q --system

say "packages: containerd, CNI plugins, kernel headers, python3 (for tulle-cni)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends containerd containernetworking-plugins \
  "linux-headers-$(uname -r)" python3 python3-venv curl gpg ca-certificates jq >/dev/null
if [ ! -f /etc/containerd/config.toml ] || ! grep -q 'SystemdCgroup = true' /etc/containerd/config.toml; then
  mkdir -p /etc/containerd
  containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
  systemctl restart containerd
fi
# kubelet looks for plugins in /opt/cni/bin; Debian installs them in /usr/lib/cni.
mkdir -p /opt/cni/bin
for plugin in ptp host-local loopback portmap; do
  ln -sfn "/usr/lib/cni/$plugin" "/opt/cni/bin/$plugin"
done

say "Kubernetes $KUBERNETES_MINOR packages (pkgs.k8s.io)"
keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
if [ ! -f "$keyring" ]; then
  mkdir -p /etc/apt/keyrings
  curl -fsSL "https://pkgs.k8s.io/core:/stable:/$KUBERNETES_MINOR/deb/Release.key" | gpg --dearmor -o "$keyring"
fi
echo "deb [signed-by=$keyring] https://pkgs.k8s.io/core:/stable:/$KUBERNETES_MINOR/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null
echo "KUBELET_EXTRA_ARGS=--node-ip=$NODE_IP" > /etc/default/kubelet
systemctl enable --now kubelet

say "tulle-cni: the chained plugin, from the wheels \`make image\` built"
wheels="$TULLE_SRC/build/image/wheels"
[ -d "$wheels" ] || fail "$wheels is missing: run \`make image\` on the host before \`vagrant up\`"
if [ ! -x /opt/tulle/bin/tulle-cni ]; then
  python3 -m venv /opt/tulle
  /opt/tulle/bin/pip install -q --no-index --find-links "$wheels" tulle
fi
ln -sfn /opt/tulle/bin/tulle-cni /opt/cni/bin/tulle-cni

say "image: $TULLE_IMAGE into containerd (k8s.io namespace)"
tarball="$TULLE_SRC/build/image/tulle-oci.tar"
[ -f "$tarball" ] || fail "$tarball is missing: run \`make image\` on the host before \`vagrant up\`"
ctr -n k8s.io images import --base-name "$TULLE_IMAGE" "$tarball" >/dev/null
ctr -n k8s.io images ls -q | grep -qx "$TULLE_IMAGE:latest" \
  || fail "containerd has no $TULLE_IMAGE:latest after importing $tarball (ctr -n k8s.io images ls)"
