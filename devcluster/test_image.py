"""Builds the local image `bob-test/busybox:latest` from the host's busybox-static.

No image registry is reachable from the test machines, so the tests and the README tour
use this image: a root file system of one static busybox with its applet links, made
with `docker import`. Run as `python -m devcluster.test_image`; a no-op when it exists.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile

import docker
import docker.errors

IMAGE = "bob-test/busybox:latest"
BUSYBOX = "/bin/busybox"


def rootfs_tar() -> bytes:
    """A tar of /bin/busybox, a link per applet, and the usual empty directories."""
    applets = subprocess.run(
        [BUSYBOX, "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "root", "etc", "workspace"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        passwd = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def ensure_image(client: docker.DockerClient | None = None) -> str:
    client = client or docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        repo, tag = IMAGE.rsplit(":", 1)
        client.api.import_image_from_data(
            rootfs_tar(), repository=repo, tag=tag, changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]']
        )
        print(f"built {IMAGE}")
    return IMAGE


if __name__ == "__main__":
    ensure_image()
    sys.exit(0)
