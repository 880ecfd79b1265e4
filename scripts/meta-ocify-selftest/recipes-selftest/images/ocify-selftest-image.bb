SUMMARY = "meta-ocify's self-test image: a small rootfs, made without compiling, through real bitbake image tasks"
DESCRIPTION = "npm run test:yocto runs this recipe's tasks with bitbake -b (no other recipe is built): \
do_rootfs makes a few files under the fake root the way a package manager would (an owner that is not \
root, a setuid binary, a file capability, a device node, a hard link), then image.bbclass's own tasks \
run meta-ocify's IMAGE_CMDs, do_image_complete deploys them, and do_ocify_push pushes one."

require ocify-selftest.inc

IMAGE_FSTYPES = "ocify-oci ocify-docker"
OCIFY_IMAGE_LAYERS = "app:/opt/app"
OCIFY_IMAGE_CMD = "/opt/app/run"
OCIFY_IMAGE_LABELS = "org.example.test=meta-ocify-selftest"
OCIFY_IMAGE_USER = "1234:567"

# A static busybox of the build host, so that the image runs.
OCIFY_SELFTEST_BUSYBOX ?= "/bin/busybox"

# The rootfs a package manager would leave, made by the task itself under the fake root: the owners,
# modes, capability and device node live in pseudo's database, as in a real build.
fakeroot python do_rootfs () {
    import os, shutil, struct
    rootfs = d.getVar("IMAGE_ROOTFS")
    def path(p):
        return os.path.join(rootfs, p.lstrip("/"))
    for dir in ("bin", "usr/bin", "dev", "etc", "home/app", "opt/app"):
        bb.utils.mkdirhier(path(dir))
    shutil.copy(d.getVar("OCIFY_SELFTEST_BUSYBOX"), path("bin/busybox"))
    for applet in ("sh", "stat", "ls", "cat", "id"):
        os.symlink("busybox", path("bin/" + applet))
    with open(path("etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\napp:x:1234:567::/home/app:/bin/sh\n")
    with open(path("home/app/data.txt"), "w") as f:
        f.write("data\n")
    for p in ("home/app", "home/app/data.txt"):
        os.chown(path(p), 1234, 567)
    shutil.copy(d.getVar("OCIFY_SELFTEST_BUSYBOX"), path("usr/bin/su"))
    os.chmod(path("usr/bin/su"), 0o4755)
    shutil.copy(d.getVar("OCIFY_SELFTEST_BUSYBOX"), path("usr/bin/ping"))
    # What setcap cap_net_raw+ep writes: VFS_CAP_REVISION_2 with the effective flag, bit 13 permitted.
    os.setxattr(path("usr/bin/ping"), "security.capability", struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0))
    os.mknod(path("dev/console"), 0o20600, os.makedev(5, 1))
    with open(path("opt/app/run"), "w") as f:
        f.write("#!/bin/sh\necho app\n")
    os.chmod(path("opt/app/run"), 0o755)
    os.link(path("opt/app/run"), path("opt/app/run-link"))
    ocify_selftest_rootfs_done(d)
}
