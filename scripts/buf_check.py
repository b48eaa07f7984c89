"""buf lint and buf breaking on protos/, offline.

Usage: buf_check.py lint
       buf_check.py breaking [--against REF]

buf cannot compile protos/ on its own: google/api/field_behavior.proto is not
in the module, and a buf.yaml dependency on googleapis would need the Buf
Schema Registry. So buf checks images instead, which protoc (the pinned
grpcio-tools) builds with the include paths `make proto` uses: the
googleapis-common-protos wheel ships the .proto files. The images keep source
info, so the COMMENTS rules see the comments; the rules come from
protos/buf.yaml, and --path trialplane leaves the imported google/* files
out of the checks.

breaking compares the working tree with the protos/ of a commit, exported
with `git archive` and built the same way:
  HEAD    when protos/ has uncommitted changes (a developer before committing);
  HEAD~1  otherwise (CI on a clean clone: the last commit, for a merge its
          first parent, the branch it was merged into);
  REF     with --against (`make lint BREAKING_AGAINST=origin/main` checks a
          whole branch).
It skips, saying why, only when there is nothing to compare with: no git
repository, no commit, or a clean tree whose HEAD has no parent here (the
first commit, or a clone of depth 1).

One exception to buf's FILE rules: a language option (go_package,
java_package ...) that a file did not set before may be set now. Nobody could
have generated code under the old value because there was none to rely on;
changing or removing an option that was set still fails.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_protos import PROTO_ROOT, ROOT, include_paths  # noqa: E402

CONFIG = PROTO_ROOT / "buf.yaml"
TARGETS = ["--path", "trialplane"]
# buf's FILE_SAME_<OPTION> rules for the options that only name things in
# generated code, and the FileOptions field each one compares.
LANGUAGE_OPTIONS = {
    f"FILE_SAME_{name.upper()}": name
    for name in (
        "go_package", "java_package", "java_multiple_files", "java_outer_classname", "csharp_namespace",
        "php_namespace", "php_metadata_namespace", "php_class_prefix", "ruby_package", "objc_class_prefix",
        "swift_prefix",
    )
}


def buf() -> str:
    """The buf of this virtualenv (PyPI buf-bin), else one on PATH."""
    beside = Path(sys.executable).with_name("buf")
    found = str(beside) if beside.is_file() else shutil.which("buf")
    if not found:
        raise SystemExit("buf not found; `make install` installs buf-bin")
    return found


def run_buf(work: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    # buf keeps a cache even for images; a scratch one works where HOME is read-only.
    env = {**os.environ}
    env.setdefault("BUF_CACHE_DIR", str(work / "buf-cache"))
    return subprocess.run([buf(), *args], env=env, **kwargs)


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


def lint(work: Path) -> int:
    image = build_image(PROTO_ROOT, work / "current.binpb")
    return run_buf(work, "lint", str(image), "--config", str(CONFIG), *TARGETS).returncode


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True)


def is_commit(ref: str) -> bool:
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0


def base_ref() -> tuple[str | None, str]:
    """The commit to compare with and why, or None and why there is none."""
    if git("rev-parse", "--is-inside-work-tree").returncode != 0:
        return None, "not a git repository"
    if not is_commit("HEAD"):
        return None, "no commit yet"
    if git("status", "--porcelain", "--", str(PROTO_ROOT)).stdout.strip():
        return "HEAD", "protos/ has uncommitted changes"
    if is_commit("HEAD~1"):
        return "HEAD~1", "protos/ is committed"
    shallow = git("rev-parse", "--is-shallow-repository").stdout.strip() == b"true"
    why = "a shallow clone; `git fetch --deepen=1` fetches it" if shallow else "the first commit"
    return None, f"protos/ is committed and HEAD has no parent here ({why})"


def export_protos(ref: str, into: Path) -> Path | None:
    """protos/ as of ref, written under into; None when ref has none."""
    if git("cat-file", "-e", f"{ref}:protos").returncode != 0:
        return None
    archive = git("archive", "--format=tar", ref, "--", "protos")
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref} failed: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # The "data" filter refuses odd members; Pythons before it trust git.
        tar.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return into / "protos"


def newly_set_option(violation: dict, before: dict[str, descriptor_pb2.FileDescriptorProto]) -> bool:
    """Whether a violation only says that a file now sets a language option
    it did not set before."""
    option = LANGUAGE_OPTIONS.get(violation.get("type", ""))
    old = before.get(violation.get("path", ""))
    return option is not None and old is not None and not old.options.HasField(option)


def breaking(work: Path, against: str | None) -> int:
    reason = f"--against {against}"
    if against is None:
        against, reason = base_ref()
        if against is None:
            print(f"buf breaking: skipped: {reason}, so there is nothing to compare with")
            return 0
    elif not is_commit(against):
        raise SystemExit(f"buf breaking: {against} is not a commit here")
    old_root = export_protos(against, work / "against")
    if old_root is None:
        print(f"buf breaking: skipped: {against} has no protos/")
        return 0
    print(f"buf breaking: the working tree against {against} ({reason})")
    current = build_image(PROTO_ROOT, work / "current.binpb")
    previous = build_image(old_root, work / "against.binpb")
    result = run_buf(
        work, "breaking", str(current), "--against", str(previous), "--config", str(CONFIG), *TARGETS,
        "--error-format", "json", capture_output=True, text=True,
    )
    if result.returncode not in (0, 100):
        sys.stderr.write(result.stderr)
        return result.returncode
    before = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(previous.read_bytes()).file}
    violations = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    remaining = [v for v in violations if not newly_set_option(v, before)]
    for v in remaining:
        where = f"{v['path']}:{v.get('start_line', 0)}:{v.get('start_column', 0)}:" if v.get("path") else ""
        print(f"{where}{v.get('message', v)} ({v.get('type', '?')})")
    allowed = len(violations) - len(remaining)
    if allowed:
        print(f"buf breaking: {allowed} newly set language option(s) allowed")
    return 100 if remaining else 0


def main(argv: list[str]) -> int:
    if argv == ["lint"]:
        command, against = lint, None
    elif argv == ["breaking"]:
        command, against = breaking, None
    elif len(argv) == 3 and argv[:2] == ["breaking", "--against"]:
        command, against = breaking, argv[2]
    else:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory(prefix="buf-check-") as tmp:
        work = Path(tmp)
        return lint(work) if command is lint else breaking(work, against)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
