"""buf lint on protos/, offline.

Usage: buf_check.py lint

buf cannot compile protos/ on its own: google/api/field_behavior.proto is not
in the module, and a buf.yaml dependency on googleapis would need the Buf
Schema Registry. So buf checks an image instead, which protoc (the pinned
grpcio-tools) builds with the include paths `make proto` uses: the
googleapis-common-protos wheel ships the .proto files. The image keeps source
info, so the COMMENTS rules see the comments; the rules come from
protos/buf.yaml, and --path trialplane leaves the imported google/* files
out of the checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_protos import PROTO_ROOT, include_paths  # noqa: E402

CONFIG = PROTO_ROOT / "buf.yaml"
TARGETS = ["--path", "trialplane"]


def buf() -> str:
    """The buf of this virtualenv (PyPI buf-bin), else one on PATH."""
    beside = Path(sys.executable).with_name("buf")
    found = str(beside) if beside.is_file() else shutil.which("buf")
    if not found:
        raise SystemExit("buf not found; `make install` installs buf-bin")
    return found


def build_image(proto_root: Path, out: Path) -> Path:
    """A binary image (FileDescriptorSet with imports and source info) of
    every trialplane .proto under proto_root."""
    files = sorted(str(p.relative_to(proto_root)) for p in proto_root.glob("trialplane/**/*.proto"))
    args = [
        "grpc_tools.protoc",
        *[f"-I{path}" for path in include_paths(proto_root)],
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc could not compile {proto_root}")
    return out


def run_buf(work: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    # buf keeps a cache even for images; a scratch one works where HOME is read-only.
    env = {**os.environ}
    env.setdefault("BUF_CACHE_DIR", str(work / "buf-cache"))
    return subprocess.run([buf(), *args], env=env, **kwargs)


def lint(work: Path) -> int:
    image = build_image(PROTO_ROOT, work / "current.binpb")
    return run_buf(work, "lint", str(image), "--config", str(CONFIG), *TARGETS).returncode


def main(argv: list[str]) -> int:
    if argv != ["lint"]:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory(prefix="buf-check-") as tmp:
        return lint(Path(tmp))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
