#!/usr/bin/env python3
"""Writes container images as docker-archive tarballs, with no engine.

Two commands, both deterministic (same inputs, same bytes, same digests):

  archive.py layer OUT.tar [--dir DIR]... [--file SRC=DEST]... [--epoch N]
      One layer: the trees of the given directories (merged in order) and
      single files placed at DEST (mode 0755), owned by root, timestamps
      clamped to --epoch (default $SOURCE_DATE_EPOCH, else 0).

  archive.py image OUT.tar --tag NAME:TAG --layer TAR[=HISTORY]...
             --entrypoint PATH [--user U] [--env K=V]... [--workdir DIR]
             [--label K=V]... [--port 4143/tcp]... [--epoch N]
      A docker-archive (manifest.json, the config JSON and one
      `<digest>/layer.tar` per layer) that `ctr images import`,
      `docker load` and `podman load` read. Prints "unchanged" and leaves
      OUT.tar alone when it already holds exactly this image, else "wrote".

Only the standard library: this runs wherever Python 3.9+ does.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import stat
import sys
import tarfile
import tempfile
import time
from pathlib import Path

CHUNK = 1 << 20
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class ArchiveError(Exception):
    """A problem with the inputs, reported without a traceback."""


# === layers ===


def _tarinfo(name: str, st: os.stat_result, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = min(int(st.st_mtime), epoch)
    return info


def _walk(root: Path):
    """Every path under root (root itself excluded), parents first, sorted."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        entries = sorted(dirnames + filenames)
        for name in entries:
            yield base / name
        # os.walk does not descend into symlinked directories: good, they
        # are written as links.


def write_layer(out: Path, dirs: list[Path], files: list[tuple[Path, str]], epoch: int) -> None:
    """Writes one layer tar from directory trees and single files."""
    entries: dict[str, tuple[Path, os.stat_result]] = {}
    for root in dirs:
        if not root.is_dir():
            raise ArchiveError(f"layer source {root} is not a directory")
        for path in _walk(root):
            rel = path.relative_to(root).as_posix()
            entries[rel] = (path, path.lstat())
    for src, dest in files:
        if not src.is_file():
            raise ArchiveError(f"{src} does not exist or is not a file")
        parts = dest.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            entries.setdefault(parent, (None, None))  # a plain 0755 directory
        entries["/".join(parts)] = (src, src.stat())

    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        seen_inodes: dict[tuple[int, int], str] = {}
        for name in sorted(entries, key=lambda n: n.split("/")):
            path, st = entries[name]
            if path is None:
                info = tarfile.TarInfo(name)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, epoch
                info.uname = info.gname = "root"
                tar.addfile(info)
                continue
            info = _tarinfo(name, st, epoch)
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen_inodes:
                    info.type, info.linkname = tarfile.LNKTYPE, seen_inodes[key]
                    tar.addfile(info)
                    continue
                seen_inodes[key] = name
                info.size = st.st_size
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                raise ArchiveError(f"{path}: only files, directories and symlinks go into a layer")
    tmp.replace(out)


# === images ===


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ArchiveError(f"{what} {value!r} is not KEY=VALUE")
        result[key] = val
    return result


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _member(name: str, data_len: int, epoch: int, kind=tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, data_len, epoch
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.uname = info.gname = "root"
    return info


def _existing(out: Path) -> tuple[bytes | None, bytes | None]:
    """manifest.json and the config of an existing archive, if readable."""
    try:
        with tarfile.open(out) as tar:
            manifest = tar.extractfile("manifest.json").read()
            config_name = json.loads(manifest)[0]["Config"]
            return manifest, tar.extractfile(config_name).read()
    except (OSError, KeyError, tarfile.TarError, ValueError, AttributeError, IndexError):
        return None, None


def write_image(args: argparse.Namespace) -> str:
    if ":" not in args.tag.rsplit("/", 1)[-1]:
        raise ArchiveError(f"--tag {args.tag!r} needs a :TAG")
    layers = []
    for spec in args.layer:
        path, _, history = spec.partition("=")
        path = Path(path)
        if not path.is_file():
            raise ArchiveError(f"layer {path} does not exist")
        layers.append((path, sha256_file(path), history or f"layer {path.name}"))

    created = _rfc3339(args.epoch)
    config_section = {
        "Entrypoint": args.entrypoint,
        "Env": args.env,
        "WorkingDir": args.workdir,
        "Labels": _pairs(args.label, "--label"),
    }
    if args.user:
        config_section["User"] = args.user
    if args.port:
        config_section["ExposedPorts"] = {p: {} for p in args.port}
    config = {
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": created,
        "config": config_section,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for _, d, _ in layers]},
        "history": [{"created": created, "created_by": h} for _, _, h in layers],
    }
    config_bytes = _canonical(config)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [args.tag], "Layers": [f"{d}/layer.tar" for _, d, _ in layers]}]
    manifest_bytes = _canonical(manifest)

    out = Path(args.out)
    if _existing(out) == (manifest_bytes, config_bytes):
        return "unchanged"

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            written = set()
            for path, digest, _ in layers:
                if digest in written:
                    continue
                written.add(digest)
                tar.addfile(_member(digest, 0, args.epoch, tarfile.DIRTYPE))
                with open(path, "rb") as f:
                    tar.addfile(_member(f"{digest}/layer.tar", path.stat().st_size, args.epoch), f)
            tar.addfile(_member(config_name, len(config_bytes), args.epoch), io.BytesIO(config_bytes))
            tar.addfile(_member("manifest.json", len(manifest_bytes), args.epoch), io.BytesIO(manifest_bytes))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return "wrote"


# === command line ===


def _epoch_default() -> int:
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        raise ArchiveError("SOURCE_DATE_EPOCH is not a number of seconds") from None


def _file_spec(value: str) -> tuple[Path, str]:
    src, sep, dest = value.partition("=")
    if not sep or not dest.startswith("/"):
        raise argparse.ArgumentTypeError(f"{value!r} is not SRC=/ABSOLUTE/DEST")
    return Path(src), dest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    layer = sub.add_parser("layer", help="write one layer tar")
    layer.add_argument("out")
    layer.add_argument("--dir", action="append", default=[], type=Path)
    layer.add_argument("--file", action="append", default=[], type=_file_spec)
    layer.add_argument("--epoch", type=int)

    image = sub.add_parser("image", help="write a docker-archive")
    image.add_argument("out")
    image.add_argument("--tag", required=True)
    image.add_argument("--layer", action="append", required=True)
    image.add_argument("--entrypoint", action="append", required=True)
    image.add_argument("--user", default="")
    image.add_argument("--env", action="append", default=[])
    image.add_argument("--workdir", default="/")
    image.add_argument("--label", action="append", default=[])
    image.add_argument("--port", action="append", default=[])
    image.add_argument("--epoch", type=int)

    args = parser.parse_args(argv)
    try:
        if args.epoch is None:
            args.epoch = _epoch_default()
        if args.command == "layer":
            if not args.dir and not args.file:
                raise ArchiveError("a layer needs --dir or --file")
            write_layer(Path(args.out), args.dir, args.file, args.epoch)
        else:
            print(write_image(args))
    except ArchiveError as error:
        print(f"archive.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
