#!/usr/bin/env python3
"""Write a one-layer image as a docker-archive tarball (the `docker save`
layout) from a directory, without a registry or a container engine.

usage: mkimage.py OUT.tar NAME:TAG ROOTFS_DIR [-- ENTRYPOINT ARGS...]

`ctr -n k8s.io images import OUT.tar` imports it under NAME:TAG. Give NAME a
domain (localhost/...), or containerd files it under docker.io/library/.
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def tar_of(rootfs):
    """An uncompressed tar of the directory, owned by root, in name order."""
    buf = io.BytesIO()

    def as_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(rootfs)):
            tar.add(os.path.join(rootfs, name), arcname=name, filter=as_root)
    return buf.getvalue()


def member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main(argv):
    entrypoint = []
    if "--" in argv:
        entrypoint = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    if len(argv) != 3 or ":" not in argv[1]:
        sys.exit(__doc__)
    out, ref, rootfs = argv

    layer = tar_of(rootfs)
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": entrypoint or None,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{
        "Config": config_name,
        "RepoTags": [ref],
        "Layers": [diff_id + "/layer.tar"],
    }]).encode()

    tmp = out + ".tmp"
    with tarfile.open(tmp, "w") as tar:
        member(tar, config_name, config)
        member(tar, diff_id + "/layer.tar", layer)
        member(tar, "manifest.json", manifest)
    os.replace(tmp, out)
    print(f"{out}: {ref} ({len(layer) // 1024} KiB)")


main(sys.argv[1:])
