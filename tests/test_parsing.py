"""Parsing Python in two threads at once never fails: ``import afr`` puts a process-wide lock around
``ast.parse`` (and so ``ast.literal_eval``, which libcst, inspect and traceback call), keeping CPython 3.11's
tree conversion to one thread at a time (the arms search in threads of their own; unlocked, the agent's parse
and the validator's could end with ``SystemError: AST constructor recursion depth mismatch``)."""

from __future__ import annotations

import ast
import gc
import sys
import threading
from pathlib import Path

import afr  # noqa: F401 -- what every afr process imports first: it guards ast.parse
from afr._parsing import parse_python

AFR = Path(__file__).resolve().parents[1] / "afr"


class _Finaliser:
    """Garbage whose collection runs Python code: a thread switch in the middle of another thread's parse."""

    def __del__(self) -> None:
        sum(range(200))


def _make_cyclic_garbage() -> None:
    for _ in range(20):
        item = _Finaliser()
        item.self = item  # type: ignore[attr-defined]


def _race(*workloads) -> list[BaseException]:
    """Run each workload 600 times in a thread of its own, all at once; the errors they raised."""
    errors: list[BaseException] = []

    def repeat(work) -> None:
        try:
            for _ in range(600):
                _make_cyclic_garbage()
                work()
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    # The conditions under which the unlocked parse fails within a few hundred iterations (seen in a
    # campaign's log and reproduced this way): frequent collections, finalisers, the shortest switch interval.
    switch, thresholds = sys.getswitchinterval(), gc.get_threshold()
    sys.setswitchinterval(1e-6)
    gc.set_threshold(50, 1, 1)
    try:
        threads = [threading.Thread(target=repeat, args=(work,)) for work in workloads]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
        gc.set_threshold(*thresholds)
    return errors


SOURCE = (AFR / "surface" / "_validator.py").read_text(encoding="utf-8")


def test_two_threads_parse_at_once_without_errors() -> None:
    assert _race(lambda: parse_python(SOURCE), lambda: parse_python(SOURCE)) == []


def test_a_library_literal_eval_beside_our_parse_without_errors() -> None:
    # what failed in CI with the lock around afr's own parses only: libcst's evaluated_value (literal_eval)
    # in the control arm's validation while the evolve agent parsed in the other arm
    literal = repr([1, 2.5, (3, "x"), {"k": None}] * 40)
    assert _race(lambda: parse_python(SOURCE), lambda: ast.literal_eval(literal)) == []


def test_import_afr_guards_ast_parse_for_every_caller() -> None:
    assert getattr(ast.parse, "__wrapped__", None) is not None
    assert ast.literal_eval("[1, (2.5, 'x')]") == [1, (2.5, "x")]
    assert ast.dump(ast.parse("x = 1", mode="exec")) == ast.dump(ast.parse.__wrapped__("x = 1", mode="exec"))


def test_parse_python_is_ast_parse() -> None:
    source = "def f(x):\n    return x + 1\n"
    assert ast.dump(parse_python(source)) == ast.dump(ast.parse(source))
    try:
        parse_python("def (", filename="candidate.py")
    except SyntaxError as error:
        assert error.filename == "candidate.py"
    else:  # pragma: no cover - the assertion's message
        raise AssertionError("a syntax error was not raised")


def test_no_module_of_afr_parses_without_the_lock() -> None:
    unlocked = []
    for path in sorted(AFR.rglob("*.py")):
        if path.name == "_parsing.py" and path.parent == AFR:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            attribute = isinstance(node, ast.Attribute) and node.attr == "parse"
            if attribute and getattr(node.value, "id", "") == "ast":
                unlocked.append(f"{path.relative_to(AFR.parent)}:{node.lineno}")
            imported = isinstance(node, ast.ImportFrom) and node.module == "ast"
            if imported and any(alias.name == "parse" for alias in node.names):
                unlocked.append(f"{path.relative_to(AFR.parent)}:{node.lineno}")
    assert unlocked == [], "use afr._parsing.parse_python: " + ", ".join(unlocked)
