"""Generates gen/bob_pb from protos/bob_pb (`make gen`), or checks that it is current.

python -m devcluster.gen           # write gen/
python -m devcluster.gen --check   # exit 1 when gen/ differs from what protos/ gives
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
PACKAGE = "bob_pb"
INIT_TEXT = '"""Generated from protos/ by `make gen`. Do not edit."""\n'


def generate(out: Path) -> None:
    """Runs protoc over every .proto file into out/, with .pyi stubs and gRPC stubs."""
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE).glob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / PACKAGE / "__init__.py").write_text(INIT_TEXT)


def differences(a: Path, b: Path) -> list[str]:
    """Files that differ, or exist on one side only, between two generated trees."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    found = [*cmp.left_only, *cmp.right_only, *cmp.diff_files]
    for name, sub in cmp.subdirs.items():
        found += [f"{name}/{f}" for f in differences(Path(sub.left), Path(sub.right))]
    # dircmp compares shallowly (size and mtime); compare the contents of the rest.
    for name in cmp.same_files:
        if (a / name).read_bytes() != (b / name).read_bytes():
            found.append(name)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with gen/")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            current = GEN / PACKAGE
            stale = differences(fresh / PACKAGE, current) if current.exists() else [PACKAGE]
            if stale:
                print("gen/ does not match protos/ (run `make gen`):", ", ".join(sorted(stale)))
                return 1
            print("gen/ matches protos/")
            return 0
        shutil.rmtree(GEN / PACKAGE, ignore_errors=True)
        shutil.copytree(fresh / PACKAGE, GEN / PACKAGE)
    print(f"wrote {GEN / PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
