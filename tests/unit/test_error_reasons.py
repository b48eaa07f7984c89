"""One error path: every reason the server can raise is a value of ErrorReason,
and only server/api/errors.py speaks in gRPC status codes."""

import ast
import pathlib

from trialplane.v1 import errors_pb2

SERVER = pathlib.Path(__file__).resolve().parents[2] / "server"
REASONS = {name.removeprefix("ERROR_REASON_") for name in errors_pb2.ErrorReason.keys()}


def _reasons_in(tree: ast.AST):
    """Every reason="X" keyword and every `reason = "X"` class attribute, but
    for an early-stopping Decision's reason, which is a sentence for people."""
    prose = {
        id(keyword) for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Decision"
        for keyword in node.keywords
    }
    for node in ast.walk(tree):
        if (isinstance(node, ast.keyword) and node.arg == "reason" and isinstance(node.value, ast.Constant)
                and id(node) not in prose):
            yield node.value.value, node.value.lineno
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["reason"]
                        and isinstance(stmt.value, ast.Constant)):
                    yield stmt.value.value, stmt.lineno


def test_every_reason_raised_anywhere_is_an_error_reason():
    found = {}
    for path in SERVER.rglob("*.py"):
        for reason, line in _reasons_in(ast.parse(path.read_text(), str(path))):
            found[f"{path.relative_to(SERVER)}:{line}"] = reason
    assert len(found) > 20, found  # the scan sees the domain's errors
    unknown = {where: reason for where, reason in found.items() if reason not in REASONS}
    assert unknown == {}


def test_only_the_error_map_speaks_in_status_codes():
    speakers = sorted(
        str(path.relative_to(SERVER)) for path in SERVER.rglob("*.py")
        if "StatusCode" in path.read_text() or "code_pb2" in path.read_text()
    )
    assert speakers == ["api/errors.py"]
