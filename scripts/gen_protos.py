"""Compile protos/trialplane/v1/*.proto into Python modules, stubs and type hints.

Usage: gen_protos.py OUT_DIR

OUT_DIR receives trialplane/__init__.py, trialplane/v1/__init__.py and the
*_pb2.py, *_pb2.pyi and *_pb2_grpc.py files. The tests call generate() into a
temporary folder and compare it with the committed generated/ folder.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


PACKAGES = [Path("trialplane") / "v1", Path("trialplane") / "katib" / "v1beta1"]


def proto_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (PROTO_ROOT / package).glob("*.proto"))


def googleapis_root() -> Path:
    """The folder holding google/api/field_behavior.proto and its siblings.

    The googleapis-common-protos wheel (a runtime dependency, for the
    generated imports) ships the .proto files beside its *_pb2.py modules, so
    the include path comes from the installed package: nothing is vendored
    and nothing is fetched."""
    spec = importlib.util.find_spec("google.api")
    for location in (spec.submodule_search_locations or []) if spec else []:
        root = Path(location).parent.parent
        if (root / "google" / "api" / "field_behavior.proto").is_file():
            return root
    raise SystemExit("google/api/field_behavior.proto not found; install googleapis-common-protos")


def include_paths(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """protoc's -I roots: our protos, protobuf's well-known types (shipped in
    grpcio-tools) and Google's API annotations."""
    return [Path(proto_root), Path(str(resources.files("grpc_tools") / "_proto")), googleapis_root()]


def generate(out_dir: Path) -> None:
    out_dir = Path(out_dir)
    for package in PACKAGES:
        (out_dir / package).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / package).glob("*_pb2*.py*"):
            stale.unlink()
    args = [
        "grpc_tools.protoc",
        *[f"-I{path}" for path in include_paths()],
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(path.relative_to(PROTO_ROOT)) for path in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in PACKAGES:
        for parent in [package, *package.parents][:-1]:
            (out_dir / parent / "__init__.py").write_text("")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    generate(Path(sys.argv[1]))
