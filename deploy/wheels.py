"""The project as wheels, ours and every dependency's, in one tar the hosts install from
with `pip --no-index`: no host reaches PyPI.

Built reproducibly, so that an unchanged tree gives a byte-identical tar and the hosts
see no change: our wheel is built from a clean copy of the tree with SOURCE_DATE_EPOCH
fixed (the wheel builder then stamps every entry with it), dependencies are the
registry's own files, and the tar lists them sorted, with fixed owners and times.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sources() -> list[str]:
    """What the wheel is built from: pyproject.toml, the README it names, and the top
    directory of every package it lists (package-dir mapped, as bob_pb lives in gen/)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup = project["tool"]["setuptools"]
    mapped = setup.get("package-dir", {})
    tops = {mapped.get(name, name.replace(".", "/")).split("/")[0] for name in setup["packages"]}
    return ["pyproject.toml", "README.md", *sorted(tops)]


_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
# 1980-01-01, the earliest time a zip entry can carry.
EPOCH = "315532800"
TAR_NAME = "bob-wheels.tar"


def _set_version(pyproject: Path, version: str) -> None:
    text = pyproject.read_text()
    new, count = re.subn(r'(?m)^version = "[^"]*"$', f'version = "{version}"', text, count=1)
    if count != 1:
        raise RuntimeError(f"no version line in {pyproject}")
    pyproject.write_text(new)


def build(out_dir: Path, version: str | None = None) -> Path:
    """Builds the wheels into `out_dir/wheels` and answers the tar of them."""
    wheels = out_dir / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)
    wheels.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="bob-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in _sources():
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=_SKIP)
            else:
                shutil.copy2(path, src / name)
        if version:
            _set_version(src / "pyproject.toml", version)
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        # Only binary wheels for the dependencies: a host has no compiler to finish an sdist.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--wheel-dir",
                str(wheels),
                "--only-binary",
                ":all:",
                "--no-binary",
                "bob-py",
                str(src),
            ],
            check=True,
            env=env,
        )
    return _tar(wheels, out_dir / TAR_NAME)


def _tar(wheels: Path, tar_path: Path) -> Path:
    tmp = tar_path.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for wheel in sorted(wheels.glob("*.whl")):
            info = tar.gettarinfo(str(wheel), arcname=wheel.name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = int(EPOCH), 0, 0, "", ""
            info.mode = 0o644
            with wheel.open("rb") as f:
                tar.addfile(info, f)
    if tar_path.exists() and _sha256(tar_path) == _sha256(tmp):
        tmp.unlink()  # unchanged: keep the old file (and its time)
    else:
        tmp.replace(tar_path)
    return tar_path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest(tar_path: Path) -> str:
    return _sha256(tar_path)
