#!/usr/bin/env bash
# Installs ComfyUI's web frontend, the version pinned in web/requirements.txt,
# into .deps/frontend (pip --target with the wheel's sha256 checked: static
# files, nothing changes in the system's Python). Does nothing when that
# version is there. `cozy serve` serves it at / (docs/ui.md).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^comfyui-frontend-package==\([0-9.]*\).*/\1/p' web/requirements.txt)
if [ -d ".deps/frontend/comfyui_frontend_package-$version.dist-info" ]; then exit 0; fi
echo "cozy: installing ComfyUI's frontend $version into .deps/frontend"
rm -rf .deps/frontend
install() {
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --require-hashes --target .deps/frontend -r web/requirements.txt "$@"
}
log=$(mktemp)
if ! install 2>"$log"; then
  if ! grep -q CERTIFICATE_VERIFY_FAILED "$log"; then
    cat "$log" >&2
    exit 1
  fi
  # A network whose proxy presents its own certificate, which this machine
  # does not trust: the wheel's pinned sha256 still vouches for what arrives.
  echo "cozy: PyPI's certificate is not trusted here; fetching again, checked by the wheel's sha256 alone"
  rm -rf .deps/frontend
  install --trusted-host pypi.org --trusted-host files.pythonhosted.org
fi
rm -f "$log"
