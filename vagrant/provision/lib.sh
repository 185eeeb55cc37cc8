#!/usr/bin/env bash
# Helpers the provisioning scripts source. Not run on its own.
# shellcheck disable=SC2034  # variables used by the scripts that source this file

TULLE_SRC=/tulle                                    # the repository, rsynced by the Vagrantfile
TULLE_IMAGE="${TULLE_IMAGE:-ghcr.io/tulle-mesh/tulle}"  # image/build.sh's TULLE_IMAGE_NAME
ADMIN_KUBECONFIG=/etc/kubernetes/admin.conf
NODE_KUBECONFIG=/etc/kubernetes/kubelet.conf

say()  { printf '\033[1;34m[%s]\033[0m %s\n' "$(basename "$0" .sh)" "$*"; }
fail() { printf '\033[1;31m[%s] error:\033[0m %s\n' "$(basename "$0" .sh)" "$*" >&2; exit 1; }

need_root() { [ "$(id -u)" = "0" ] || fail "run as root (vagrant's shell provisioner does)"; }

need_env() {  # NAME...: each must be set and non-empty (the Vagrantfile passes them)
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || fail "$name is not set: run through the Vagrantfile (vagrant up)"
  done
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 3 s, fail naming DESCRIPTION.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
    sleep 3
  done
}
