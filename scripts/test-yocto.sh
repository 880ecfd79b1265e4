#!/usr/bin/env bash
# npm run test:yocto: meta-ocify with real bitbake (not part of npm test). Needs clones of bitbake and
# openembedded-core of one series (BITBAKE_DIR, OE_CORE_DIR: 2.8 + scarthgap, or 2.18 + wrynose), run as
# a normal user (bitbake refuses root) with the en_US.UTF-8 locale and oe-core's host packages.
# It parses the layer, expands core-image-minimal with both image types and checks the task graph.
set -euo pipefail
: "${BITBAKE_DIR:?set BITBAKE_DIR to a bitbake clone}" "${OE_CORE_DIR:?set OE_CORE_DIR to an openembedded-core clone}"
layer="$(cd "$(dirname "$0")/../contrib/meta-ocify" && pwd)"
build="${BUILD_DIR:-$(mktemp -d /tmp/ocify-yocto-build.XXXXXX)}"
export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 BITBAKEDIR="$BITBAKE_DIR"
cd "$OE_CORE_DIR"
# shellcheck disable=SC1091
. ./oe-init-build-env "$build" >/dev/null
grep -q meta-ocify conf/bblayers.conf || echo "BBLAYERS += \"$layer\"" >>conf/bblayers.conf
grep -q ocify-image conf/local.conf || cat >>conf/local.conf <<'EOC'
IMAGE_CLASSES += "ocify-image"
IMAGE_FSTYPES += "ocify-oci ocify-docker"
HOSTTOOLS_NONFATAL += "ocify node"
OCIFY_PUSH_REF = "127.0.0.1:5000/yocto/core-image-minimal:1"
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
EOC
fail() { echo "FAIL: $*"; exit 1; }
bitbake -e core-image-minimal >env.txt
grep -q '^OCIFY_IMAGE_ARCH="amd64"' env.txt || fail "OCIFY_IMAGE_ARCH is not amd64 for qemux86-64"
grep -q '^OCIFY_PLATFORM="linux/amd64"' env.txt || fail "OCIFY_PLATFORM"
grep -q '^do_image_ocify_oci()' env.txt || fail "no do_image_ocify_oci task function"
bitbake -g core-image-minimal >/dev/null
for edge in '"core-image-minimal.do_image_complete" -> "core-image-minimal.do_image_ocify_oci"' \
  '"core-image-minimal.do_image_complete" -> "core-image-minimal.do_image_ocify_docker"' \
  '"core-image-minimal.do_ocify_push" -> "core-image-minimal.do_image_complete"'; do
  grep -qF "$edge" task-depends.dot || fail "task graph lacks $edge"
done
echo "1 passed, 0 failed"
