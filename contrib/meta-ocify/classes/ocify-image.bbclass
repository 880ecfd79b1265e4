# ocify-image: container images from an image recipe's rootfs, written by ocify.
#
# Two image types (add them to IMAGE_FSTYPES):
#   ocify-oci      an OCI image layout in a tar (skopeo's oci-archive:), ${IMAGE_NAME}.ocify-oci
#   ocify-docker   a `docker load` tarball (docker-archive:), ${IMAGE_NAME}.ocify-docker
# image.bbclass links ${IMAGE_LINK_NAME}.<type> to them as for every other type.
#
# The rootfs is read by the task's own tar, under pseudo, so owners, modes, setuid bits, file
# capabilities (xattrs), device nodes and hard links are the rootfs's own, and streamed into
# `ocify import -` (Node cannot see pseudo's owners if it reads the files itself).
#
# do_ocify_push (bitbake -c ocify_push IMAGE) pushes the OCI archive to ${OCIFY_PUSH_REF} and attaches
# the image's SPDX SBOM to it as an OCI 1.1 referrer. It is the only task here that uses the network.
#
# Shell code here runs under /bin/sh (dash on Debian and Ubuntu hosts): POSIX only, no bashisms.

IMAGE_TYPES += "ocify-oci ocify-docker"

# The ocify command. By default a host tool: add `HOSTTOOLS_NONFATAL += "ocify node"` to local.conf,
# or set OCIFY = "/usr/bin/node /path/to/ocify/bin/ocify.js". With meta-oe, OCIFY_PROVIDER = "native"
# builds it as ocify-native instead (dynamic-layers/openembedded-layer).
OCIFY ?= "ocify"
OCIFY_PROVIDER ?= "host"

# ocify's blob cache, inside the build rather than in ~/.cache: removing tmp/ removes it. It is
# content-addressed and no part of the task signatures, so what it holds never changes an image: after
# bitbake -c cleanall, or in another build directory, the image is built again to the same digest.
OCIFY_CACHE_DIR ?= "${TMPDIR}/ocify-cache"

# The image's name (docker-archive's repository) and tag.
OCIFY_IMAGE_NAME ?= "${IMAGE_BASENAME}"
OCIFY_IMAGE_TAG ?= "latest"

# The platform, as meta-virtualization's OCI_IMAGE_ARCH / OCI_IMAGE_SUBARCH compute it (plus arm64/v8).
OCIFY_IMAGE_OS ?= "linux"
OCIFY_IMAGE_ARCH ?= "${@oe.go.map_arch(d.getVar('TARGET_ARCH'))}"
OCIFY_IMAGE_VARIANT ?= "${@ocify_variant(d.getVar('TARGET_ARCH'), d.getVar('TUNE_FEATURES'))}"

# The image config. ENTRYPOINT and CMD: a JSON array or words split on spaces (no shell involved).
OCIFY_IMAGE_ENTRYPOINT ?= ""
OCIFY_IMAGE_CMD ?= "/bin/sh"
OCIFY_IMAGE_WORKINGDIR ?= ""
OCIFY_IMAGE_USER ?= ""
# Space-separated KEY=VALUE lists.
OCIFY_IMAGE_ENV_VARS ?= ""
OCIFY_IMAGE_LABELS ?= ""
# Space-separated PORT[/tcp|/udp].
OCIFY_IMAGE_PORTS ?= ""
OCIFY_IMAGE_STOPSIGNAL ?= ""
OCIFY_IMAGE_AUTHOR ?= ""

# The base image the rootfs goes on top of; empty for none (scratch). One of:
#   a registry reference (docker.io/library/alpine:3.20, best pinned @sha256:...): fetched by
#     do_ocify_fetch_base, the one task before the image that uses the network;
#   oci-archive:FILE[:TAG], oci:DIR[:TAG], docker-archive:FILE: a file on the build host;
#   an image recipe's name whose IMAGE_FSTYPES has ocify-oci: that recipe's OCI archive, the image
#     tagged OCIFY_IMAGE_BASE_TAG in it (its OCIFY_IMAGE_TAG; the archive may hold its SBOM too).
OCIFY_IMAGE_BASE ?= ""
OCIFY_IMAGE_BASE_TAG ?= "latest"

# Extra layers split off the rootfs, bottom to top, each NAME:DIR[+DIR...], for example
#   OCIFY_IMAGE_LAYERS = "python:/usr/lib/python3.12 app:/opt/app+/etc/app"
# The first layer holds everything not listed; each listed directory is in its own layer only.
OCIFY_IMAGE_LAYERS ?= ""

# gzip (default; every runtime reads it), zstd, or none.
OCIFY_IMAGE_COMPRESSION ?= "gzip"

# Where do_ocify_push pushes the OCI archive (a registry reference), and the SBOM attached to it.
# Credentials come from the build user's docker/podman configuration, never from the metadata.
OCIFY_PUSH_REF ?= ""
OCIFY_INSECURE_REGISTRIES ?= ""
OCIFY_SBOM_ARTIFACT_TYPE ?= "application/spdx+json"
# scarthgap writes SPDX 2.2 as ${IMAGE_NAME}.spdx.tar.zst in do_rootfs; wrynose writes SPDX 3.0.1 as
# ${IMAGE_NAME}.spdx.json after do_image_complete. The first that exists is attached; the links by
# ${IMAGE_LINK_NAME} find them when a task runs in a later bitbake run than the one that named them
# (IMAGE_NAME has the date of the run).
OCIFY_SBOM_FILES ?= "${IMAGE_NAME}.spdx.json ${IMAGE_NAME}.spdx.tar.zst ${IMAGE_LINK_NAME}.spdx.json ${IMAGE_LINK_NAME}.spdx.tar.zst"

def ocify_variant(arch, tune):
    """The OCI platform variant of a target: arm's v5/v6/v7 from the tune, v8 for arm64."""
    import re
    features = (tune or "").split()
    if re.match(r"aarch64", arch or ""):
        return "v8"
    if re.match(r"arm", arch or ""):
        for version in ("8", "7", "6", "5"):
            if any(f.startswith("armv" + version) for f in features):
                return "v" + version
    return ""

def ocify_quote_words(words):
    import shlex
    return " ".join(shlex.quote(w) for w in words)

def ocify_platform(d):
    platform = "%s/%s" % (d.getVar("OCIFY_IMAGE_OS"), d.getVar("OCIFY_IMAGE_ARCH"))
    variant = d.getVar("OCIFY_IMAGE_VARIANT")
    return platform + "/" + variant if variant else platform

def ocify_config_args(d):
    """ocify's config flags for the OCIFY_IMAGE_* variables, quoted for the shell."""
    args = []
    def value(flag, name):
        v = d.getVar(name)
        if v:
            args.extend([flag, v.strip()])
    def words(flag, name):
        for w in (d.getVar(name) or "").split():
            args.extend([flag, w])
    value("--entrypoint", "OCIFY_IMAGE_ENTRYPOINT")
    value("--cmd", "OCIFY_IMAGE_CMD")
    value("--workdir", "OCIFY_IMAGE_WORKINGDIR")
    value("--user", "OCIFY_IMAGE_USER")
    value("--stop-signal", "OCIFY_IMAGE_STOPSIGNAL")
    value("--author", "OCIFY_IMAGE_AUTHOR")
    words("--env", "OCIFY_IMAGE_ENV_VARS")
    words("--label", "OCIFY_IMAGE_LABELS")
    words("--expose", "OCIFY_IMAGE_PORTS")
    return ocify_quote_words(args)

def ocify_common_args(d):
    """Flags every ocify call of the image task takes: platform, cache, compression."""
    args = ["--quiet", "--platform", ocify_platform(d), "--cache-dir", d.getVar("OCIFY_CACHE_DIR")]
    compression = d.getVar("OCIFY_IMAGE_COMPRESSION")
    if compression:
        args.extend(["--compression", compression])
    for registry in (d.getVar("OCIFY_INSECURE_REGISTRIES") or "").split():
        args.extend(["--insecure-registry", registry])
    return ocify_quote_words(args)

def ocify_layer_plan(d):
    """One line per layer, bottom first: tar's member arguments, quoted for the shell."""
    import os, re
    layers = []
    for spec in (d.getVar("OCIFY_IMAGE_LAYERS") or "").split():
        name, sep, dirs = spec.partition(":")
        paths = []
        for path in dirs.split("+"):
            norm = os.path.normpath("/" + path.strip("/")) if path else ""
            if not sep or not re.match(r"^[A-Za-z0-9._-]+$", name) or not re.match(r"^/[A-Za-z0-9._@/-]+$", path) or norm != path.rstrip("/") or norm == "/":
                bb.fatal("OCIFY_IMAGE_LAYERS: %s is not NAME:/DIR[+/DIR...] (absolute directories below /)" % spec)
            paths.append("." + norm)
        layers.append(paths)
    listed = [p for paths in layers for p in paths]
    def excluded(mine):
        # Every other layer's directories below one of this layer's (or anywhere, for the rest layer).
        return ["--exclude=" + p for p in listed if p not in mine and (not mine or any(p.startswith(m + "/") for m in mine))]
    lines = [ocify_quote_words(["--anchored", "--no-wildcards"] + excluded([]) + ["."])]
    for paths in layers:
        lines.append(ocify_quote_words(["--anchored", "--no-wildcards"] + excluded(paths) + paths))
    return "\n".join(lines)

def ocify_base_ref(d):
    """OCIFY_IMAGE_BASE as a transport reference ocify reads without the network."""
    base = (d.getVar("OCIFY_IMAGE_BASE") or "").strip()
    if not base:
        return "scratch"
    kind = ocify_base_kind(base)
    if kind == "recipe":
        return "oci-archive:%s/%s%s%s.ocify-oci:%s" % (d.getVar("DEPLOY_DIR_IMAGE"), base, d.getVar("IMAGE_MACHINE_SUFFIX") or "",
                                                   d.getVar("IMAGE_NAME_SUFFIX") or "", d.getVar("OCIFY_IMAGE_BASE_TAG"))
    if kind == "registry":
        return "oci:%s:base" % d.getVar("OCIFY_BASE_LAYOUT")
    return base

def ocify_base_kind(base):
    if base.split(":", 1)[0] in ("oci", "oci-archive", "docker-archive"):
        return "file"
    if "/" in base or ":" in base or "@" in base:
        return "registry"
    return "recipe"

OCIFY_PLATFORM = "${@ocify_platform(d)}"
OCIFY_BASE_LAYOUT = "${WORKDIR}/ocify-base"
OCIFY_BASE_REF = "${@ocify_base_ref(d)}"
OCIFY_CONFIG_ARGS = "${@ocify_config_args(d)}"
OCIFY_COMMON_ARGS = "${@ocify_common_args(d)}"
OCIFY_LAYER_PLAN = "${@ocify_layer_plan(d)}"

# ocify's output (in $1) to the log; on failure its one-line error becomes the task's one error line.
ocify_report() {
	cat "$1" >&2
	ocify_line=$(grep '^ocify: ' "$1" | head -n 1)
	rm -f "$1"
	[ "$2" -ne 0 ] || return 0
	[ -n "$ocify_line" ] || ocify_line="meta-ocify: ${OCIFY} failed (exit $2) with no message; is ocify in HOSTTOOLS? See the log"
	bbfatal_log "$ocify_line"
}

# Run ocify with the arguments given.
ocify_run() {
	ocify_status=0
	${OCIFY} "$@" 2>"${T}/ocify-stderr.$$" || ocify_status=$?
	ocify_report "${T}/ocify-stderr.$$" $ocify_status
}

# Build the image: one `tar | ocify import -` per layer, each on the one before, the last one written to
# $2 with the config. $1 is the work directory.
ocify_build() {
	ocify_work="$1"
	ocify_dest="$2"
	rm -rf "$ocify_work"
	mkdir -p "$ocify_work" "${OCIFY_CACHE_DIR}"
	SOURCE_DATE_EPOCH="${REPRODUCIBLE_TIMESTAMP_ROOTFS}"
	[ -n "$SOURCE_DATE_EPOCH" ] || SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH}"
	export SOURCE_DATE_EPOCH
	ocify_from="${OCIFY_BASE_REF}"
	cat >"$ocify_work/plan" <<-'OCIFY_EOF'
${OCIFY_LAYER_PLAN}
	OCIFY_EOF
	ocify_count=$(wc -l <"$ocify_work/plan")
	ocify_n=0
	while read -r ocify_members; do
		ocify_n=$(expr $ocify_n + 1)
		if [ "$ocify_n" -eq "$ocify_count" ]; then
			set -- -t "$ocify_dest" ${OCIFY_CONFIG_ARGS}
		else
			set -- -t "oci:$ocify_work/layout:layer$ocify_n"
		fi
		ocify_layer "$ocify_work" "$ocify_from" "$ocify_members" "$@"
		ocify_from="oci:$ocify_work/layout:layer$ocify_n"
	done <"$ocify_work/plan"
}

# One layer: $1 work directory, $2 base, $3 tar's member arguments (quoted), the rest ocify's flags.
# tar's failure is reported first: ocify then fails too, on a truncated tar.
ocify_layer() {
	ocify_work="$1"
	ocify_base="$2"
	ocify_members="$3"
	shift 3
	ocify_rootfs="${IMAGE_ROOTFS}"
	rm -f "$ocify_work/tar-status"
	ocify_status=0
	{
		eval "tar --numeric-owner --xattrs --xattrs-include='*' -C \"\$ocify_rootfs\" -cf - $ocify_members" ||
			echo $? >"$ocify_work/tar-status"
	} | ${OCIFY} import - --from "$ocify_base" ${OCIFY_COMMON_ARGS} "$@" 2>"$ocify_work/stderr" || ocify_status=$?
	ocify_tar_status=$(cat "$ocify_work/tar-status" 2>/dev/null || echo 0)
	# tar killed by SIGPIPE (141) only means ocify stopped reading: ocify's own error is the one to show.
	if [ "$ocify_tar_status" -ne 0 ]; then
		if [ "$ocify_tar_status" -ne 141 ] || [ "$ocify_status" -eq 0 ]; then
			cat "$ocify_work/stderr" >&2
			bbfatal_log "meta-ocify: tar of ${IMAGE_ROOTFS} failed (exit $ocify_tar_status); see tar's message above"
		fi
	fi
	ocify_report "$ocify_work/stderr" $ocify_status
}

# The SBOM files to attach, the image's own document first: prints their paths, one a line.
# $1: the directory to look in, $2: a scratch directory for scarthgap's tar.
ocify_sbom_files() {
	for ocify_name in ${OCIFY_SBOM_FILES}; do
		ocify_file="$1/$ocify_name"
		[ -f "$ocify_file" ] || continue
		# A link's target, by its own (dated) name; zstd refuses to read through a link.
		ocify_file=$(readlink -f "$ocify_file")
		case "$ocify_file" in
		*.tar.zst)
			rm -rf "$2"
			mkdir -p "$2"
			zstd -dc "$ocify_file" | tar -xf - -C "$2"
			# The image's own document is named after the image (by do_rootfs's IMAGE_NAME).
			find "$2" -type f -name "${IMAGE_LINK_NAME}*.spdx.json" | LC_ALL=C sort
			find "$2" -type f -name '*.spdx.json' ! -name "${IMAGE_LINK_NAME}*.spdx.json" | LC_ALL=C sort
			;;
		*)
			echo "$ocify_file"
			;;
		esac
		return 0
	done
}

# Attach the SBOM to $1 (an image reference) when there is one; $2 is where to look for it. With $3 =
# quiet, finding none is not worth a note (wrynose's is attached by do_ocify_sbom, later).
ocify_attach_sbom() {
	ocify_files="${WORKDIR}/ocify-sbom.list"
	ocify_sbom_files "$2" "${WORKDIR}/ocify-sbom" >"$ocify_files"
	if [ ! -s "$ocify_files" ]; then
		[ "$3" = quiet ] || bbnote "meta-ocify: no SBOM ($(echo ${OCIFY_SBOM_FILES})) in $2; none attached to $1"
		return 0
	fi
	# The list has no spaces (IMAGE_NAME has none), so word splitting is safe here.
	ocify_run attach --quiet --cache-dir "${OCIFY_CACHE_DIR}" ${OCIFY_INSECURE_ARGS} --subject "$1" \
		--artifact-type "${OCIFY_SBOM_ARTIFACT_TYPE}" $(cat "$ocify_files")
}

OCIFY_INSECURE_ARGS = "${@ocify_quote_words([a for r in (d.getVar('OCIFY_INSECURE_REGISTRIES') or '').split() for a in ('--insecure-registry', r)])}"

ocify_image() {
	ocify_out="${IMGDEPLOYDIR}/${IMAGE_NAME}.$2"
	case "$1" in
	oci-archive) ocify_build "${WORKDIR}/ocify-$2" "oci-archive:$ocify_out:${OCIFY_IMAGE_TAG}" ;;
	docker-archive) ocify_build "${WORKDIR}/ocify-$2" "docker-archive:$ocify_out:${OCIFY_IMAGE_NAME}:${OCIFY_IMAGE_TAG}" ;;
	esac
	# scarthgap's SBOM exists already (do_rootfs wrote it): the OCI archive carries it as a referrer.
	if [ "$1" = oci-archive ]; then
		ocify_attach_sbom "oci-archive:$ocify_out:${OCIFY_IMAGE_TAG}" "${IMGDEPLOYDIR}" quiet
	fi
	rm -rf "${WORKDIR}/ocify-$2"
}

IMAGE_CMD:ocify-oci = "ocify_image oci-archive ocify-oci"
IMAGE_CMD:ocify-docker = "ocify_image docker-archive ocify-docker"
IMAGE_CMD:ocify-oci[vardepsexclude] = "OCIFY_CACHE_DIR"
IMAGE_CMD:ocify-docker[vardepsexclude] = "OCIFY_CACHE_DIR"

# A registry base is fetched before the image, in its own task: the image task needs no network.
do_ocify_fetch_base() {
	rm -rf "${OCIFY_BASE_LAYOUT}"
	ocify_run copy --quiet --cache-dir "${OCIFY_CACHE_DIR}" --platform "${OCIFY_PLATFORM}" ${OCIFY_INSECURE_ARGS} \
		"${OCIFY_IMAGE_BASE}" "oci:${OCIFY_BASE_LAYOUT}:base"
}
do_ocify_fetch_base[network] = "1"
do_ocify_fetch_base[vardepsexclude] = "OCIFY_CACHE_DIR"

# The deployed OCI archive. A task after do_image_complete may run in a later bitbake run, whose
# IMAGE_NAME (dated) names no file: the ${IMAGE_LINK_NAME} link image.bbclass made names the archive.
# Sets ocify_archive (bbfatal in a $(...) would fail without its message).
ocify_deployed_archive() {
	for ocify_name in "${IMAGE_NAME}" "${IMAGE_LINK_NAME}"; do
		ocify_archive="${DEPLOY_DIR_IMAGE}/$ocify_name.ocify-oci"
		if [ -n "$ocify_name" ] && [ -f "$ocify_archive" ]; then
			ocify_archive=$(readlink -f "$ocify_archive")
			return 0
		fi
	done
	bbfatal "meta-ocify: ${DEPLOY_DIR_IMAGE}/${IMAGE_LINK_NAME}.ocify-oci does not exist (add ocify-oci to IMAGE_FSTYPES)"
}

# wrynose writes the SBOM (SPDX 3.0.1) after do_image_complete, so the deployed OCI archive gets it here,
# as a referrer (added only when the image has create-spdx-image-3.0's do_create_image_sbom_spdx).
do_ocify_sbom() {
	ocify_deployed_archive
	ocify_attach_sbom "oci-archive:$ocify_archive:${OCIFY_IMAGE_TAG}" "${DEPLOY_DIR_IMAGE}"
}
do_ocify_sbom[vardepsexclude] = "OCIFY_CACHE_DIR"

# Push the OCI archive, then attach the SBOM (wrynose writes it after do_image_complete).
do_ocify_push() {
	if [ -z "${OCIFY_PUSH_REF}" ]; then
		bbnote "meta-ocify: OCIFY_PUSH_REF is not set; nothing pushed"
		return 0
	fi
	ocify_deployed_archive
	ocify_run copy --quiet --cache-dir "${OCIFY_CACHE_DIR}" ${OCIFY_INSECURE_ARGS} \
		"oci-archive:$ocify_archive:${OCIFY_IMAGE_TAG}" "${OCIFY_PUSH_REF}"
	ocify_attach_sbom "${OCIFY_PUSH_REF}" "${DEPLOY_DIR_IMAGE}"
}
do_ocify_push[network] = "1"
do_ocify_push[nostamp] = "1"
do_ocify_push[vardepsexclude] = "OCIFY_CACHE_DIR"
addtask ocify_push after do_image_complete

python __anonymous() {
    fstypes = (d.getVar("IMAGE_FSTYPES") or "").split()
    if not any(t in fstypes for t in ("ocify-oci", "ocify-docker")):
        return
    tasks = ["do_image_ocify_oci", "do_image_ocify_docker"]
    if d.getVar("OCIFY_PROVIDER") == "native":
        for task in tasks + ["do_ocify_push", "do_ocify_fetch_base"]:
            d.appendVarFlag(task, "depends", " ocify-native:do_populate_sysroot")
    base = (d.getVar("OCIFY_IMAGE_BASE") or "").strip()
    kind = ocify_base_kind(base) if base else None
    if kind == "recipe":
        for task in tasks:
            d.appendVarFlag(task, "depends", " %s:do_image_complete" % base)
    elif kind == "registry":
        bb.build.addtask("do_ocify_fetch_base", "do_image", "do_prepare_recipe_sysroot", d)
    if bb.data.inherits_class("create-spdx-image-3.0", d):
        # wrynose: the SBOM is written after do_image_complete; do_ocify_sbom adds it to the OCI archive
        # and the push waits for both (the archive is rewritten while do_ocify_sbom runs).
        bb.build.addtask("do_ocify_push", None, "do_create_image_sbom_spdx", d)
        if "ocify-oci" in fstypes:
            bb.build.addtask("do_ocify_sbom", "do_build", "do_create_image_sbom_spdx", d)
            bb.build.addtask("do_ocify_push", None, "do_ocify_sbom", d)
}
