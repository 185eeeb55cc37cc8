#!/usr/bin/env bash
# Run a command chrooted into a root filesystem, in private mount and PID namespaces, with
# what a Tulle node pod gets from its host: /proc, /dev, /sys (with bpffs and tracefs when the
# host has them mounted) and the kernel headers BCC compiles against (/lib/modules, /usr/src,
# read-only), as the DaemonSet's hostPath mounts give them. The mounts live only in the
# private mount namespace, so they vanish with the command: nothing to clean up.
#
#   image/run-in-rootfs.sh ROOTFS COMMAND [ARG...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ROOTFS COMMAND [ARG...]" >&2; exit 2; }
rootfs="$(cd "$1" && pwd)"
shift
[ -x "$rootfs/bin/sh" ] || { echo "error: $rootfs is not a root filesystem (no /bin/sh)" >&2; exit 2; }
[ "$rootfs" != "/" ] || { echo "error: refusing to use / as the root filesystem" >&2; exit 2; }

# shellcheck disable=SC2016  # $r and $@ expand in the inner shell
exec unshare --mount --pid --fork --kill-child --propagation private env r="$rootfs" bash -c '
  set -euo pipefail
  mkdir -p "$r/proc" "$r/dev" "$r/sys"
  mount -t proc proc "$r/proc"
  mount --rbind /dev "$r/dev"
  mount --rbind /sys "$r/sys"
  for d in /lib/modules /usr/src; do
    if [ -d "$d" ]; then
      mkdir -p "$r$d"
      mount --rbind "$d" "$r$d"
      mount -o remount,bind,ro "$r$d"
    fi
  done
  exec chroot "$r" /usr/bin/env -i PATH=/opt/tulle/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
' run-in-rootfs "$@"
