SUMMARY = "ocify, run by meta-oe's nodejs-native, for meta-ocify's image tasks"
DESCRIPTION = "The ocify checkout meta-ocify is part of, compiled with nodejs-native and installed in the \
native sysroot with its runtime npm dependencies, so that the build host needs no Node.js of its own. \
meta-ocify's tasks use it with OCIFY_PROVIDER = \"native\". The checkout needs its npm dependencies \
installed (npm ci), as for any use of it."
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

inherit native

DEPENDS = "nodejs-native"

# The checkout: contrib/meta-ocify is two directories below it.
OCIFY_SRCDIR ?= "${@os.path.normpath(os.path.join(d.getVar('OCIFY_LAYERDIR'), '..', '..'))}"

# No SRC_URI: the sources are read from the checkout, and its files are the tasks' checksums.
B = "${WORKDIR}/build"
OCIFY_SOURCES = "src bin package.json package-lock.json tsconfig.json"
do_compile[file-checksums] += "${@' '.join('%s/%s:True' % (d.getVar('OCIFY_SRCDIR'), f) for f in d.getVar('OCIFY_SOURCES').split())}"

python __anonymous() {
    import json, os
    package = os.path.join(d.getVar("OCIFY_SRCDIR"), "package.json")
    if not os.path.isfile(package):
        raise bb.parse.SkipRecipe("OCIFY_SRCDIR (%s) is not an ocify checkout" % d.getVar("OCIFY_SRCDIR"))
    bb.parse.mark_dependency(d, package)
    with open(package) as f:
        d.setVar("PV", json.load(f)["version"])
}

do_configure[noexec] = "1"

# TypeScript to JavaScript, by nodejs-native running the checkout's own compiler.
do_compile[cleandirs] = "${B}"
do_compile() {
	if [ ! -f "${OCIFY_SRCDIR}/node_modules/typescript/bin/tsc" ]; then
		bbfatal "ocify-native: ${OCIFY_SRCDIR}/node_modules has no typescript (run npm ci in ${OCIFY_SRCDIR})"
	fi
	for f in ${OCIFY_SOURCES}; do
		cp -R "${OCIFY_SRCDIR}/$f" "${B}/$f"
	done
	ln -s "${OCIFY_SRCDIR}/node_modules" "${B}/node_modules"
	node "${B}/node_modules/typescript/bin/tsc" -p "${B}/tsconfig.json"
}

# What npm would install from a package of it: bin, dist without the tests, package.json, and the
# dependencies package-lock.json lists for production (optional ones when the checkout has them).
python do_install() {
    import json, os, shutil
    src, build = d.getVar("OCIFY_SRCDIR"), d.getVar("B")
    dest = d.getVar("D") + d.getVar("libdir") + "/ocify"
    bb.utils.mkdirhier(dest)
    shutil.copy(os.path.join(build, "package.json"), dest)
    shutil.copytree(os.path.join(build, "bin"), os.path.join(dest, "bin"), symlinks=True)
    tests = shutil.ignore_patterns("*.test.*", "test-support")
    shutil.copytree(os.path.join(build, "dist"), os.path.join(dest, "dist"), ignore=tests, symlinks=True)
    with open(os.path.join(src, "package-lock.json")) as f:
        packages = json.load(f)["packages"]
    for name, info in sorted(packages.items()):
        if not name.startswith("node_modules/") or info.get("dev"):
            continue
        module = os.path.join(src, name)
        if not os.path.isdir(module):
            if info.get("optional"):
                continue
            bb.fatal("ocify-native: %s is missing (run npm ci in %s)" % (module, src))
        shutil.copytree(module, os.path.join(dest, name), symlinks=True, ignore=shutil.ignore_patterns("node_modules"))
    bindir = d.getVar("D") + d.getVar("bindir")
    bb.utils.mkdirhier(bindir)
    wrapper = os.path.join(bindir, "ocify")
    relative = os.path.relpath(d.getVar("libdir") + "/ocify", d.getVar("bindir"))
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec node "$(dirname "$0")/%s/bin/ocify.js" "$@"\n' % relative)
    os.chmod(wrapper, 0o755)
}
