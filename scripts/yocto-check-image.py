#!/usr/bin/env python3
"""scripts/test-yocto.sh's judge of ocify-selftest-image's images: reads the OCI archive and the
docker-archive bitbake deployed (their tar headers, as any runtime would) and checks that they hold the
rootfs do_rootfs made under pseudo, with the recipe's config and the SBOM as a referrer.

Usage: yocto-check-image.py OCI_ARCHIVE DOCKER_ARCHIVE EPOCH   (prints what is wrong; exit 1 if anything)
"""
import datetime
import gzip
import json
import struct
import sys
import tarfile

problems = []


def expect(cond, what):
    if not cond:
        problems.append(what)


def read_member(tar, name):
    return tar.extractfile(tar.getmember(name)).read()


def layer_entries(tar, digest):
    """A layer's entries by name (without ./ or a trailing /)."""
    blob = tar.extractfile(tar.getmember("blobs/sha256/" + digest.split(":")[1]))
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=blob), mode="r|") as layer:
        return {m.name.lstrip("./").rstrip("/") or ".": m for m in layer}


def check_rest_layer(entries, epoch):
    data = entries.get("home/app/data.txt")
    expect(data is not None and (data.uid, data.gid) == (1234, 567), "home/app/data.txt is not 1234:567")
    su = entries.get("usr/bin/su")
    expect(su is not None and su.mode == 0o4755 and su.uid == 0, "usr/bin/su is not root's, mode 4755")
    ping = entries.get("usr/bin/ping")
    cap = ping.pax_headers.get("SCHILY.xattr.security.capability") if ping else None
    want = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
    expect(cap is not None and cap.encode("utf-8", "surrogateescape") == want, "usr/bin/ping lost its capability (cap_net_raw+ep)")
    console = entries.get("dev/console")
    expect(console is not None and console.ischr() and (console.devmajor, console.devminor) == (5, 1), "dev/console is not char 5,1")
    expect(not any(n.startswith("opt/app/") for n in entries), "opt/app's files are in the first layer too")
    expect(all(m.mtime == epoch for m in entries.values()), "a time is not REPRODUCIBLE_TIMESTAMP_ROOTFS")


def check_app_layer(entries, epoch):
    run = entries.get("opt/app/run")
    expect(run is not None and run.isfile() and run.mode == 0o755, "opt/app/run is not a 755 file in the app layer")
    link = entries.get("opt/app/run-link")
    expect(link is not None and link.islnk() and link.linkname.lstrip("./") == "opt/app/run", "opt/app/run-link is not a hard link")
    expect(not any(n.startswith(("home/", "usr/")) for n in entries), "the app layer holds more than /opt/app")
    expect(all(m.mtime == epoch for m in entries.values()), "a time in the app layer is not REPRODUCIBLE_TIMESTAMP_ROOTFS")


def check_oci(path, epoch):
    with tarfile.open(path) as tar:
        index = json.loads(read_member(tar, "index.json"))
        tagged = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "latest"]
        expect(len(tagged) == 1, "index.json has no one manifest tagged latest")
        manifest = json.loads(read_member(tar, "blobs/sha256/" + tagged[0]["digest"].split(":")[1]))
        config = json.loads(read_member(tar, "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]))
        created = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        expect((config["os"], config["architecture"]) == ("linux", "amd64"), "platform is not linux/amd64")
        expect(config.get("created") == created, "created is not REPRODUCIBLE_TIMESTAMP_ROOTFS")
        c = config.get("config", {})
        expect(c.get("User") == "1234:567" and c.get("Cmd") == ["/opt/app/run"], "User/Cmd are not the recipe's")
        expect(c.get("Labels") == {"org.example.test": "meta-ocify-selftest"}, "labels other than the recipe's (a date?)")
        expect(len(manifest["layers"]) == 2, "not two layers (OCIFY_IMAGE_LAYERS = app:/opt/app)")
        if len(manifest["layers"]) == 2:
            check_rest_layer(layer_entries(tar, manifest["layers"][0]["digest"]), epoch)
            check_app_layer(layer_entries(tar, manifest["layers"][1]["digest"]), epoch)
        sboms = [m for m in index["manifests"] if m.get("artifactType") == "application/spdx+json"]
        expect(len(sboms) == 1, "no SBOM referrer in index.json")
        if sboms:
            artifact = json.loads(read_member(tar, "blobs/sha256/" + sboms[0]["digest"].split(":")[1]))
            expect(artifact["subject"]["digest"] == tagged[0]["digest"], "the SBOM's subject is not the image")
            doc = artifact["layers"][0]
            expect(doc["annotations"]["org.opencontainers.image.title"].endswith(".spdx.json"), "the SBOM blob is not an .spdx.json")
            spdx = read_member(tar, "blobs/sha256/" + doc["digest"].split(":")[1])
            expect(b"SPDX-2.2" in spdx or b"spdx.org/rdf/3.0" in spdx, "the SBOM blob is not an SPDX 2.2 or 3.0 document")
        return config["rootfs"]["diff_ids"]


def check_docker(path, diff_ids):
    with tarfile.open(path) as tar:
        manifest = json.loads(read_member(tar, "manifest.json"))
        expect(manifest[0]["RepoTags"] == ["ocify-selftest-image:latest"], "docker-archive is not tagged ocify-selftest-image:latest")
        config = json.loads(read_member(tar, manifest[0]["Config"]))
        expect(config["rootfs"]["diff_ids"] == diff_ids, "docker-archive's layers are not the OCI archive's")


def main():
    oci, docker, epoch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    check_docker(docker, check_oci(oci, epoch))
    for p in problems:
        print("image check: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
