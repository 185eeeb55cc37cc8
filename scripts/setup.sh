#!/usr/bin/env bash
# Idempotent machine setup for Tulle on Debian 12: packages, kernel headers, pseudo
# filesystems, and the project venv. Every step checks before it acts, so a second
# run with nothing to do takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.tulle-setup-stamp"

say()  { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(uname -s)" = "Linux" ] || fail "Tulle needs Linux (eBPF, network namespaces); this is $(uname -s)."
[ "$(id -u)" = "0" ] || fail "setup must run as root (it installs packages, mounts bpffs and builds namespaces). Try: sudo make setup"
command -v apt-get >/dev/null || fail "apt-get not found: setup supports Debian 12 (bookworm). Install the packages listed in scripts/setup.sh by hand on other systems."

DEBS=(
  python3-bpfcc libbpfcc bpfcc-tools libbpf1   # BCC from Debian (not on PyPI) and libbpf for test runs
  linux-headers-amd64                          # BCC compiles against kernel headers
  python3-venv python3-pip python3-dev         # the venv is made from the system interpreter
  iproute2 iptables util-linux procps          # netns, veth, nsenter, the iptables comparison
  curl dnsutils iputils-ping jq                # used inside lab pods, by the tests and the demo hints
  graphviz                                     # `dot` renders `tulle map` to SVG and PNG
  wrk nginx-light strace                       # load, backends and syscall counts for the benchmarks
  nghttp2-client                               # h2load: gRPC load for make bench-l7-grpc
  containernetworking-plugins                  # ptp + host-local (/usr/lib/cni): the CNI chain tulle-cni follows
  libcap2-bin                                  # capsh: the agent started with only its DaemonSet's capabilities
  # -- the image and the VM lab (issue 13: image/, vagrant/) --
  mmdebstrap umoci                             # `make image`: Debian rootfs -> OCI layout (image/build.sh)
  shellcheck vagrant                           # the unit tier lints vagrant/ and image/ scripts, validates the Vagrantfile
)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# Kernel headers: Debian ships headers for its own kernel, which may not match the
# running one. BCC only needs uapi-stable definitions, so link the newest available.
KREL="$(uname -r)"
MODDIR="/lib/modules/$KREL"
if [ ! -e "$MODDIR/build/include" ]; then
  arch_hdr="$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)"
  [ -n "$arch_hdr" ] || fail "no /usr/src/linux-headers-*-amd64 found after installing linux-headers-amd64"
  common_hdr="${arch_hdr%-amd64}-common"
  [ -d "$common_hdr" ] || fail "missing $common_hdr (package linux-headers-*-common)"
  say "linking kernel headers $arch_hdr -> $MODDIR/{build,source}"
  mkdir -p "$MODDIR"
  ln -sfn "$arch_hdr" "$MODDIR/build"
  ln -sfn "$common_hdr" "$MODDIR/source"
else
  say "kernel headers linked at $MODDIR/build"
fi

mount_if_absent() {  # fstype target
  if ! mountpoint -q "$2"; then
    say "mounting $1 on $2"
    mkdir -p "$2"
    mount -t "$1" "$1" "$2"
  fi
}
mount_if_absent bpf /sys/fs/bpf
mount_if_absent tracefs /sys/kernel/tracing
mount_if_absent debugfs /sys/kernel/debug

# The venv must come from Debian's interpreter: only it can import BCC.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV from /usr/bin/python3 (--system-site-packages, for BCC)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi

# Reinstall only when the dependency declaration changed.
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  say "installing tulle (editable) with test and bench extras"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test,bench]"
  echo "$want" > "$STAMP"
else
  say "venv up to date"
fi

"$VENV/bin/python" -c 'import bcc' 2>/dev/null || fail "the venv cannot import bcc; check python3-bpfcc"
say "ready: $VENV/bin/tulle"
