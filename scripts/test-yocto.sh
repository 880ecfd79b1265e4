#!/usr/bin/env bash
# npm run test:yocto: meta-ocify with real bitbake (not part of npm test). Run it with bash (it sources
# oe-init-build-env with an argument, which dash does not pass).
#
#   BITBAKE_DIR=... OE_CORE_DIR=... [META_OE_DIR=...] [BUILD_DIR=...] bash scripts/test-yocto.sh
#
# BITBAKE_DIR and OE_CORE_DIR: clones of one series (bitbake 2.8 + openembedded-core scarthgap, or 2.18 +
# wrynose); META_OE_DIR: a meta-openembedded clone of the same series, for the ocify-native checks.
# BUILD_DIR (default /tmp/ocify-yocto-SERIES/build) is kept between runs: parsing all of oe-core takes
# long, and bitbake reuses its parse cache. Needs oe-core's host packages, the en_US.UTF-8 locale, Debian's
# pseudo, skopeo and docker-registry. bitbake refuses root: as root, the script runs itself as TEST_USER
# (default nobody).
#
# What it does, with real bitbake:
#  1. parses oe-core with meta-ocify (no meta-oe: the ocify-native recipe must not be seen), expands
#     core-image-minimal with both image types and checks the variables and the task graph;
#  2. runs ocify-selftest-image (scripts/meta-ocify-selftest: a few files made under pseudo in do_rootfs,
#     nothing compiled) with `bitbake -b`, which builds no other recipe: image.bbclass's own image tasks
#     run the class's IMAGE_CMDs, do_image_complete deploys, SPDX tasks write the SBOM; the images are
#     checked with skopeo and by reading their layers; a second build directory gives the same digest;
#     do_ocify_push (a later bitbake run) pushes to a local docker-registry with the SBOM attached; two
#     more images build on a recipe's archive and on the pushed image (do_ocify_fetch_base); an image task
#     made to read the registry itself fails (bitbake gives a task without [network] none);
#  3. with META_OE_DIR: parses with meta-oe and OCIFY_PROVIDER = "native", checks ocify-native's place in
#     the task graph, and runs ocify-native's compile and install with `bitbake -b` (the host's node
#     standing in for nodejs-native, which -b does not build), then runs what it installed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
layer=$repo/contrib/meta-ocify
selftest=$here/meta-ocify-selftest
selftest_recipe=$selftest/recipes-selftest/images/ocify-selftest-image.bb
native_recipe=$layer/dynamic-layers/openembedded-layer/recipes-devtools/ocify/ocify-native.bb
: "${BITBAKE_DIR:?set BITBAKE_DIR to a bitbake clone}" "${OE_CORE_DIR:?set OE_CORE_DIR to an openembedded-core clone}"
series=$(sed -n 's/^LAYERSERIES_CORENAMES = "\([a-z]*\).*/\1/p' "$OE_CORE_DIR/meta/conf/layer.conf")
build=${BUILD_DIR:-/tmp/ocify-yocto-$series/build}

if [ "$(id -u)" = 0 ]; then
  user=${TEST_USER:-nobody}
  mkdir -p "$(dirname "$build")"
  chown "$user" "$(dirname "$build")"
  exec setpriv --reuid "$user" --regid "$(id -g "$user")" --clear-groups -- env HOME="$(dirname "$build")" bash "$0" "$@"
fi

export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 BITBAKEDIR="$BITBAKE_DIR"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ocify-yocto.XXXXXX")
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT

# This checkout's ocify and the host's node, for HOSTTOOLS_NONFATAL += "ocify node" (README's setup).
mkdir -p "$scratch/bin"
ln -s "$repo/bin/ocify.js" "$scratch/bin/ocify"
ln -s "$(command -v node)" "$scratch/bin/node"
export PATH="$scratch/bin:$PATH"

passed=0
ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}
fail() {
  echo "not ok - $*"
  echo "$passed passed, 1 failed"
  exit 1
}

# bitbake in build directory $1 (made and configured on first use by oe-init-build-env), the rest its arguments.
bb() {
  local dir=$1
  shift
  (
    set +u
    cd "$OE_CORE_DIR"
    # shellcheck disable=SC1091
    . ./oe-init-build-env "$dir" >/dev/null
    bitbake "$@"
  )
}

# Append $2 (lines) to $1's local.conf and $3 (layers) to its bblayers.conf, once: the lines are the
# configuration's identity, and any change to them makes bitbake parse everything again.
configure() {
  local dir=$1 conf=$2 layers=$3
  bb "$dir" --help >/dev/null
  grep -q '# meta-ocify test' "$dir/conf/local.conf" && return 0
  printf '# meta-ocify test\n%s\n' "$conf" >>"$dir/conf/local.conf"
  printf 'BBLAYERS += "%s"\n' "$layers" >>"$dir/conf/bblayers.conf"
}

# The README's local.conf lines, plus no network for the whole build.
readme_conf='IMAGE_CLASSES += "ocify-image"
IMAGE_FSTYPES += "ocify-oci ocify-docker"
HOSTTOOLS_NONFATAL += "ocify node"
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""'

# The value of variable $2 in `bitbake -e` output $1.
getvar() {
  sed -n "s/^$2=\"\\(.*\\)\"\$/\\1/p" "$1"
}

# Edges of a task-depends.dot ($1), one "from -> to" a line, for grep -x.
edges() {
  sed -n 's/^"\([^"]*\)" -> "\([^"]*\)"$/\1 -> \2/p' "$1"
}

has_edge() {
  grep -qxF "$2" "$1" || fail "task graph ($1) lacks $2"
}

echo "# meta-ocify with bitbake $(cd "$BITBAKE_DIR" && sed -n 's/^__version__ = "\(.*\)"/\1/p' lib/bb/__init__.py) and openembedded-core $series"

# 1. Parse and expand core-image-minimal.
configure "$build" "$readme_conf" "$layer $selftest"
bb "$build" -p >"$scratch/parse.log" 2>&1 || { cat "$scratch/parse.log"; fail "bitbake -p"; }
if grep -E '^(ERROR|WARNING):' "$scratch/parse.log"; then fail "parsing printed errors or warnings"; fi
ok "oe-core $series with meta-ocify (no meta-oe) parses without a warning"

bb "$build" -e core-image-minimal >"$scratch/env.txt"
[ "$(getvar "$scratch/env.txt" OCIFY_IMAGE_ARCH)" = amd64 ] || fail "OCIFY_IMAGE_ARCH is not amd64 (oe.go.map_arch of x86_64)"
[ "$(getvar "$scratch/env.txt" OCIFY_PLATFORM)" = linux/amd64 ] || fail "OCIFY_PLATFORM is not linux/amd64"
tmpdir=$(getvar "$scratch/env.txt" TMPDIR)
[ "$(getvar "$scratch/env.txt" OCIFY_CACHE_DIR)" = "$tmpdir/ocify-cache" ] || fail "OCIFY_CACHE_DIR is not in TMPDIR"
grep -qx '	ocify_image oci-archive ocify-oci' "$scratch/env.txt" || fail "do_image_ocify_oci does not run the class's IMAGE_CMD"
grep -qx '	ocify_image docker-archive ocify-docker' "$scratch/env.txt" || fail "do_image_ocify_docker does not run the class's IMAGE_CMD"
ok "core-image-minimal expands: platform linux/amd64, cache in TMPDIR, do_image_ocify_oci and _docker run the IMAGE_CMDs"

if bb "$build" -e ocify-native >"$scratch/native.txt" 2>&1; then fail "ocify-native is parsed without meta-oe"; fi
grep -q "Nothing PROVIDES 'ocify-native'" "$scratch/native.txt" || { cat "$scratch/native.txt"; fail "bitbake -e ocify-native"; }
ok "without meta-oe, the dynamic layer's ocify-native is not parsed"

# One graph: core-image-minimal's build and push, and the two self-test images on a base.
img=core-image-minimal reg=ocify-selftest-on-registry rcp=ocify-selftest-on-recipe
(cd "$build" && bb "$build" -g $img $img:do_ocify_push $reg $rcp >/dev/null && edges task-depends.dot >"$scratch/graph.edges")
g=$scratch/graph.edges
for type in oci docker; do
  has_edge "$g" "$img.do_image_ocify_$type -> $img.do_image"
  has_edge "$g" "$img.do_image_complete -> $img.do_image_ocify_$type"
done
has_edge "$g" "$img.do_ocify_push -> $img.do_image_complete"
if grep -q 'ocify-native' "$g"; then fail "ocify-native in the task graph with OCIFY_PROVIDER = host"; fi
if grep -q "$img.do_ocify_fetch_base" "$g"; then fail "do_ocify_fetch_base without OCIFY_IMAGE_BASE"; fi
if grep -q "do_create_image_sbom_spdx" "$g"; then
  # wrynose: the SBOM comes after do_image_complete; do_ocify_sbom adds it to the archive, the push waits.
  has_edge "$g" "$img.do_ocify_sbom -> $img.do_create_image_sbom_spdx"
  has_edge "$g" "$img.do_build -> $img.do_ocify_sbom"
  has_edge "$g" "$img.do_ocify_push -> $img.do_ocify_sbom"
  has_edge "$g" "$img.do_ocify_push -> $img.do_create_image_sbom_spdx"
  ok "task graph: image tasks between do_image and do_image_complete; do_ocify_sbom after do_create_image_sbom_spdx; do_ocify_push after both"
else
  # scarthgap: the SBOM is written in do_rootfs; no task waits for one that does not exist.
  if grep -q 'do_ocify_sbom\|sbom_spdx' "$g"; then fail "scarthgap's graph names an SBOM task"; fi
  ok "task graph: image tasks between do_image and do_image_complete; do_ocify_push after do_image_complete; no SBOM task"
fi
has_edge "$g" "$reg.do_ocify_fetch_base -> $reg.do_prepare_recipe_sysroot"
has_edge "$g" "$reg.do_image -> $reg.do_ocify_fetch_base"
has_edge "$g" "$rcp.do_image_ocify_oci -> ocify-selftest-image.do_image_complete"
if grep -q "$rcp.do_ocify_fetch_base" "$g"; then fail "do_ocify_fetch_base for a recipe base"; fi
ok "task graph: a registry base is fetched by do_ocify_fetch_base before do_image; a recipe base waits for that image's do_image_complete"

# 2. The self-test image's tasks, for real, in two build directories made anew (bitbake -b needs no parse
# cache; a stamp from an earlier run would skip a task whose ocify has changed since).
rm -rf "$build-b1" "$build-b2"
# bitbake -b in build directory $1 (log $2) of recipe $3 (a self-test image's name) with the rest as arguments.
run_selftest() {
  local dir=$1 log=$2 recipe=$3
  configure "$dir" "$readme_conf" "$layer $selftest"
  shift 3
  bb "$dir" -R "$selftest/conf/bitbake-b.conf" -b "$selftest/recipes-selftest/images/$recipe.bb" "$@" >"$log" 2>&1 || {
    grep -v '^NOTE: ' "$log"
    fail "bitbake -b $recipe $*"
  }
}
run_selftest "$build-b1" "$scratch/b1.log" ocify-selftest-image -c build
deploy=$(getvar "$scratch/env.txt" DEPLOY_DIR_IMAGE)
deploy=${deploy/#$build/$build-b1}
link=$deploy/ocify-selftest-image-qemux86-64.rootfs
[ -L "$link.ocify-oci" ] && [ -L "$link.ocify-docker" ] || fail "image.bbclass did not link the images ($(ls "$deploy"))"
ok "bitbake -b ocify-selftest-image: do_rootfs, the image tasks, do_image_complete and (wrynose) SPDX tasks ran; $(basename "$link").ocify-oci/-docker linked"

epoch=$(bb "$build-b1" -R "$selftest/conf/bitbake-b.conf" -e -b "$selftest_recipe" | getvar /dev/stdin REPRODUCIBLE_TIMESTAMP_ROOTFS)
python3 "$here/yocto-check-image.py" "$link.ocify-oci" "$link.ocify-docker" "$epoch" || fail "the images do not hold the rootfs as made"
ok "the images: config (platform, user, cmd, labels, no date), two layers, owners, setuid, capability, device, hard link, times, SBOM referrer"

run_selftest "$build-b2" "$scratch/b2.log" ocify-selftest-image -c image_complete
digest() { skopeo inspect --raw "oci-archive:$1:latest" | sha256sum | cut -d' ' -f1; }
[ "$(digest "$link.ocify-oci")" = "$(digest "${link/#$build-b1/$build-b2}.ocify-oci")" ] || fail "two build directories gave two digests"
ok "reproducible: the same manifest digest from another build directory"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$scratch/registry.yml" <<EOR
version: 0.1
storage:
  filesystem:
    rootdirectory: $scratch/registry
http:
  addr: 127.0.0.1:$port
EOR
docker-registry serve "$scratch/registry.yml" >"$scratch/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.2; done
ref=127.0.0.1:$port/selftest/image:1
(
  export OCIFY_PUSH_REF=$ref BB_ENV_PASSTHROUGH_ADDITIONS=OCIFY_PUSH_REF
  run_selftest "$build-b1" "$scratch/push.log" ocify-selftest-image -c ocify_push
)
pushed=$(skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -d' ' -f1)
[ "$pushed" = "$(digest "$link.ocify-oci")" ] || fail "the registry's manifest is not the archive's"
skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/selftest/image:sha256-$pushed" |
  grep -q '"artifactType":"application/spdx+json"' || fail "no SBOM in the referrers tag index"
ok "do_ocify_push, in a later bitbake run: the archive's manifest in the registry, the SBOM in its referrers tag index"

# Bases: the self-test image's deployed archive (a recipe), and the image just pushed (a registry).
layers() { skopeo inspect --raw --tls-verify=false "$1" | python3 -c 'import json, sys; print(*(l["digest"] for l in json.load(sys.stdin)["layers"]))'; }
base_layers=$(layers "oci-archive:$link.ocify-oci:latest")
run_selftest "$build-b1" "$scratch/on-recipe.log" $rcp -c image_complete
on_recipe=$(layers "oci-archive:$deploy/$rcp-qemux86-64.rootfs.ocify-oci:latest")
[ "${on_recipe% *}" = "$base_layers" ] || fail "$rcp is not ocify-selftest-image's layers and one more"
(
  export OCIFY_IMAGE_BASE=$ref BB_ENV_PASSTHROUGH_ADDITIONS=OCIFY_IMAGE_BASE
  run_selftest "$build-b1" "$scratch/on-registry.log" $reg -c image_complete
)
grep -q "$reg.bb:do_ocify_fetch_base" "$scratch/on-registry.log" || fail "do_ocify_fetch_base did not run"
on_registry=$(layers "oci-archive:$deploy/$reg-qemux86-64.rootfs.ocify-oci:latest")
[ "${on_registry% *}" = "$(layers "docker://$ref")" ] || fail "$reg is not the pushed image's layers and one more"
ok "bases: a recipe's deployed archive, and a registry's image fetched by do_ocify_fetch_base (it has [network])"

# bitbake runs a task without [network] where there is none: the image task, made to read the same base
# from the registry itself, fails with ocify's line, where do_ocify_fetch_base above reached it.
printf 'OCIFY_BASE_REF:pn-%s = "%s"\n' "$reg" "$ref" >"$scratch/base-from-registry.conf"
if (
  export OCIFY_IMAGE_BASE=$ref BB_ENV_PASSTHROUGH_ADDITIONS=OCIFY_IMAGE_BASE
  bb "$build-b1" -R "$selftest/conf/bitbake-b.conf" -R "$scratch/base-from-registry.conf" -b "$selftest/recipes-selftest/images/$reg.bb" \
    -c image_ocify_oci -f >"$scratch/no-network.log" 2>&1
); then fail "an image task reached the registry"; fi
grep -q "ERROR: .*ocify: cannot reach 127\.0\.0\.1:$port" "$scratch/no-network.log" || {
  cat "$scratch/no-network.log"
  fail "the image task failed otherwise than on the network"
}
curl -fs "http://127.0.0.1:$port/v2/" >/dev/null || fail "the registry stopped (so that proves nothing)"
ok "the image task runs without network: reading its base from the registry itself, it fails with ocify's one line"

# 3. ocify-native with meta-oe.
if [ -n "${META_OE_DIR:-}" ]; then
  # Only nodejs and what it needs from meta-oe are parsed; the rest of meta-oe does not concern ocify-native.
  oe_conf='IMAGE_CLASSES += "ocify-image"
IMAGE_FSTYPES += "ocify-oci ocify-docker"
OCIFY_PROVIDER = "native"
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
BBMASK += "/meta-oe/(?!recipes-devtools/nodejs/|recipes-support/c-ares/|recipes-extended/brotli/)"'
  configure "$build-meta-oe" "$oe_conf" "$META_OE_DIR/meta-oe $layer"
  bb "$build-meta-oe" -p >"$scratch/parse-oe.log" 2>&1 || { cat "$scratch/parse-oe.log"; fail "bitbake -p with meta-oe"; }
  bb "$build-meta-oe" -e ocify-native >"$scratch/native.txt"
  version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$repo/package.json")
  [ "$(getvar "$scratch/native.txt" PV)" = "$version" ] || fail "ocify-native's PV is not package.json's version"
  getvar "$scratch/native.txt" DEPENDS | grep -qw nodejs-native || fail "ocify-native does not depend on nodejs-native"
  (cd "$build-meta-oe" && bb "$build-meta-oe" -g core-image-minimal >/dev/null && edges task-depends.dot >"$scratch/native.edges")
  for type in oci docker; do
    has_edge "$scratch/native.edges" "$img.do_image_ocify_$type -> ocify-native.do_populate_sysroot"
  done
  has_edge "$scratch/native.edges" "ocify-native.do_prepare_recipe_sysroot -> nodejs-native.do_populate_sysroot"
  ok "with meta-oe: ocify-native $version parses, the image tasks wait for it, it waits for nodejs-native"

  # In a build directory of its own, made anew, with meta-oe's configuration (bitbake -b needs no parse cache).
  rm -rf "$build-native"
  configure "$build-native" "$oe_conf" "$META_OE_DIR/meta-oe $layer"
  bb "$build-native" -R "$selftest/conf/bitbake-b.conf" -b "$native_recipe" -c populate_sysroot >"$scratch/native.log" 2>&1 || {
    grep -v '^NOTE: ' "$scratch/native.log"
    fail "bitbake -b ocify-native -c populate_sysroot"
  }
  installed=$(find "$build-native" -path '*/ocify-native/*/sysroot-destdir/*/usr/bin/ocify' | head -n 1)
  [ -x "$installed" ] || fail "ocify-native installed no ocify"
  [ "$("$installed" --version)" = "ocify $version" ] || fail "the installed ocify does not run"
  mkdir -p "$scratch/rootfs/etc" && echo native >"$scratch/rootfs/etc/hostname"
  tar -C "$scratch/rootfs" -cf - . | "$installed" import - -t "oci:$scratch/native-layout:latest" --quiet >/dev/null
  skopeo inspect "oci:$scratch/native-layout:latest" >/dev/null || fail "the installed ocify's image is not readable"
  ok "ocify-native's compile and install under bitbake: the installed ocify runs and imports a rootfs"
fi

echo "$passed passed, 0 failed"
