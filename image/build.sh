#!/usr/bin/env bash
# Build Tulle's OCI image from Debian and PyPI packages only (no container registry is needed):
#
#   1. base layer: Debian 12 by mmdebstrap (python3, python3-bpfcc, libbpf1), cached by the
#      package list, so a code change does not fetch Debian again;
#   2. app layer: /opt/tulle, a venv over Debian's python3 (--system-site-packages: BCC is
#      only in Debian) holding the Tulle wheel built from this checkout and its PyPI wheels;
#   3. umoci: an OCI layout with both layers, tagged, and a tarball of it for
#      `ctr -n k8s.io images import` (image/README.md).
#
# Output under build/image/ (gitignored). Idempotent: nothing is rebuilt when neither this
# recipe nor the sources changed. Usage: image/build.sh  (or `make image`); as root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${TULLE_IMAGE_OUT:-$ROOT/build/image}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"  # Debian's python3 3.11, the image's ABI
MIRROR="${TULLE_IMAGE_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${TULLE_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
NAME="${TULLE_IMAGE_NAME:-ghcr.io/tulle-mesh/tulle}"  # what the manifests' image: fields say
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n1)"
# Debian packages of the image. python3-bpfcc brings libbpfcc and its LLVM; libbpf1 is what
# the waypoint reads pinned maps with. Kernel headers are not here: they come from the node
# (hostPath /lib/modules and /usr/src), as they must match its kernel.
DEBS="python3,python3-bpfcc,libbpf1,ca-certificates"

say()  { printf '\033[1;34m[image]\033[0m %s\n' "$*"; }
fail() { printf '\033[1;31m[image] error:\033[0m %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = "0" ] || fail "building the image needs root (mmdebstrap, chroot). Try: sudo make image"
for tool in mmdebstrap umoci unshare jq; do
  command -v "$tool" >/dev/null || fail "$tool not found: run scripts/setup.sh (it installs mmdebstrap and umoci)"
done
[ -x "$PYTHON" ] || fail "$PYTHON not found: run scripts/setup.sh first, or set PYTHON"
[ -n "$VERSION" ] || fail "no version in $ROOT/pyproject.toml"
git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 \
  || fail "$ROOT is not a git checkout: the recipe takes the wheel's files from git ls-files"

mkdir -p "$OUT"
recipe_key() { sha256sum "$ROOT/image/build.sh" "$ROOT/image/in-rootfs.sh" | sha256sum | cut -c1-16; }
sources() {  # what goes into the wheel as it is on disk now: tracked and new files, NUL-separated
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard pyproject.toml README.md \
    agent authz bpf cni controlplane gatewayapi identity l7proxy lab | while IFS= read -r -d '' f; do
      [ -f "$f" ] && printf '%s\0' "$f"; done)
}
source_key() { { recipe_key; echo "$NAME"; (cd "$ROOT" && sources | xargs -0 sha256sum); } | sha256sum | cut -c1-16; }

want="$(source_key)"
if [ -f "$OUT/tulle-oci.tar" ] && [ -d "$OUT/rootfs/opt/tulle" ] && [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$want" ]; then
  say "up to date: $OUT/tulle-oci.tar (sources unchanged)"
  exit 0
fi
started=$SECONDS

# 1. The base layer, one tarball per mmdebstrap command line (not per recipe edit).
# shellcheck disable=SC2016  # the hook's "$1" is the rootfs, expanded by mmdebstrap
base_args=(--mode=root --format=tar --variant=minbase --include="$DEBS"
  --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*'
  --skip=output/dev)
base_sources=("deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main"
  "deb $SECURITY bookworm-security main")
base="$OUT/base-$(printf '%s\n' "${base_args[@]}" "${base_sources[@]}" | sha256sum | cut -c1-16).tar"
if [ ! -f "$base" ]; then
  say "mmdebstrap: Debian 12 with $DEBS (a minute or two)"
  rm -f "$OUT"/base-*.tar
  mmdebstrap "${base_args[@]}" bookworm "$base.part" "${base_sources[@]}"
  mv "$base.part" "$base"
else
  say "base layer cached: $(basename "$base")"
fi

# 2. The wheels: Tulle from this checkout and its runtime dependencies (no extras), plus pip's
# own wheel to install them with (the image carries no pip otherwise).
say "wheels: tulle $VERSION and its dependencies"
# From a clean copy: setuptools' build/lib in a checkout can carry files since deleted.
rm -rf "$OUT/wheels" "$OUT/src"
mkdir -p "$OUT/src"
(cd "$ROOT" && sources | xargs -0 cp --parents -t "$OUT/src")
"$PYTHON" -m pip wheel -q --wheel-dir "$OUT/wheels" "$OUT/src"
rm -rf "$OUT/src"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --dest "$OUT/wheels" pip

say "rootfs: base + /opt/tulle"
rm -rf "$OUT/rootfs"
mkdir -p "$OUT/rootfs"
tar -C "$OUT/rootfs" --numeric-owner -xpf "$base"
mkdir -p "$OUT/rootfs/tmp/wheels"
cp "$OUT"/wheels/*.whl "$OUT/rootfs/tmp/wheels/"
cp "$ROOT/image/in-rootfs.sh" "$OUT/rootfs/tmp/in-rootfs.sh"
"$ROOT/image/run-in-rootfs.sh" "$OUT/rootfs" /bin/sh /tmp/in-rootfs.sh
rm -rf "$OUT/rootfs/tmp/wheels" "$OUT/rootfs/tmp/in-rootfs.sh"

# 3. The OCI layout: the Debian layer, then /opt/tulle (the layer a code change replaces).
say "umoci: OCI layout $OUT/oci (tags latest, $VERSION)"
rm -rf "$OUT/oci" "$OUT/app-layer.tar"
tar -C "$OUT/rootfs" --numeric-owner -cf "$OUT/app-layer.tar" opt/tulle
umoci init --layout "$OUT/oci"
umoci new --image "$OUT/oci:latest"
umoci raw add-layer --image "$OUT/oci:latest" "$base"
umoci raw add-layer --image "$OUT/oci:latest" "$OUT/app-layer.tar"
umoci config --image "$OUT/oci:latest" \
  --config.env 'PATH=/opt/tulle/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --config.env 'PYTHONDONTWRITEBYTECODE=1' \
  --config.workingdir / --config.cmd tulle --config.cmd --help \
  --config.label "org.opencontainers.image.title=tulle" \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label "org.opencontainers.image.licenses=Apache-2.0"
umoci tag --image "$OUT/oci:latest" "$VERSION"
umoci gc --layout "$OUT/oci"
# umoci names each manifest by its tag (org.opencontainers.image.ref.name); containerd names an
# imported image by io.containerd.image.name when present, so give each its full reference.
jq --arg name "$NAME" '.manifests |= map(.annotations["io.containerd.image.name"] =
  "\($name):\(.annotations["org.opencontainers.image.ref.name"])")' "$OUT/oci/index.json" \
  > "$OUT/oci/index.json.new"
mv "$OUT/oci/index.json.new" "$OUT/oci/index.json"
rm -f "$OUT/app-layer.tar"
tar -C "$OUT/oci" -cf "$OUT/tulle-oci.tar.part" .
mv "$OUT/tulle-oci.tar.part" "$OUT/tulle-oci.tar"
echo "$want" > "$OUT/.stamp"

say "built in $((SECONDS - started)) s: $OUT/tulle-oci.tar ($(du -sh "$OUT/tulle-oci.tar" | cut -f1)), rootfs $(du -sh "$OUT/rootfs" | cut -f1)"
say "images $NAME:latest and $NAME:$VERSION; load on a node: ctr -n k8s.io images import --base-name $NAME $OUT/tulle-oci.tar"
