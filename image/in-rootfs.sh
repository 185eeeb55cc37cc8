#!/bin/sh
# Runs inside the image's root filesystem (image/build.sh, through run-in-rootfs.sh): the
# Tulle venv at /opt/tulle over Debian's python3, from the wheels in /tmp/wheels, offline.
set -eu
# --system-site-packages: BCC (python3-bpfcc) exists only for Debian's interpreter.
# --without-pip: Debian's ensurepip is a separate package; pip runs from its wheel instead.
python3 -m venv --system-site-packages --without-pip /opt/tulle
pip_whl="$(ls /tmp/wheels/pip-*.whl)"
/opt/tulle/bin/python "$pip_whl/pip" install --quiet --no-index --no-cache-dir \
  --find-links /tmp/wheels --no-warn-script-location tulle
# The agent is started as `python -m …` by the manifests: `python` is the venv's.
/opt/tulle/bin/python -c 'import agent, bcc, cni, controlplane, l7proxy'
# pip's own files are not needed at run time.
rm -rf /opt/tulle/lib/python3*/site-packages/pip /opt/tulle/lib/python3*/site-packages/pip-*
