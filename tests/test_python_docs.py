"""docs/python.md's examples (and README.md's) run as printed, and print what the page says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.data import NYR

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCKS = re.findall(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", DOC.read_text(), re.S)
README_BLOCKS = re.findall(r"```python\n(.*?)```", (DOC.parents[1] / "README.md").read_text(), re.S)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder with the page's `examples/`: the labels file, and the first 100 records (the page's examples
    read all 5,000; the first 100, which hold all 10 gold categories that example 4 evaluates against,
    exercise the same code in a fraction of the time)."""
    root = tmp_path_factory.mktemp("python-docs")
    (root / "examples").mkdir()
    (root / "examples" / NYR.name).write_bytes(b"".join(NYR.read_bytes().splitlines(keepends=True)[:100]))
    (root / "examples" / "new_years_labels.txt").write_bytes((NYR.parent / "new_years_labels.txt").read_bytes())
    return root


def test_the_page_has_examples():
    assert len(BLOCKS) >= 4 and any(printed for _, printed in BLOCKS)


@pytest.mark.parametrize(("code", "printed"), BLOCKS, ids=[f"example{i}" for i in range(1, len(BLOCKS) + 1)])
def test_example_runs_as_printed(code, printed, workdir):
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    if printed:
        assert result.stdout == printed


@pytest.mark.parametrize("code", README_BLOCKS, ids=[f"readme{i}" for i in range(1, len(README_BLOCKS) + 1)])
def test_the_readmes_python_runs(code, workdir):
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the README's example prints its result"


SIGNATURE = re.compile(r"`(Classifier|classify|classify_file|adapt|load_adaptation|evaluate)\(([^`]*)\)`", re.S)


def written(parameters: str) -> list[tuple[str, str | None]]:
    """``a, b="-", *, c`` as the page writes a signature: each name with its shown default, if any."""
    out = []
    for part in (p.strip() for p in parameters.split(",")):
        name, _, default = part.partition("=")
        out.append((name.strip(), default.strip() or None))
    return out


def test_the_signatures_on_the_page_are_the_real_ones():
    """Each method's signature as docs/python.md spells it: every parameter, in order, with the same
    keyword-only marker and any default it shows; a parameter added, renamed or moved fails here."""
    import ast
    import inspect

    from zstc_cli import Classifier

    shown = {name: written(parameters) for name, parameters in SIGNATURE.findall(DOC.read_text())}
    public = {name for name, _ in inspect.getmembers(Classifier, inspect.isfunction) if not name.startswith("_")}
    assert set(shown) == public | {"Classifier"}
    for name, parameters in shown.items():
        real = list(
            inspect.signature(getattr(Classifier, "__init__" if name == "Classifier" else name)).parameters.values()
        )[1:]
        expected = []
        for parameter in real:
            if parameter.kind is parameter.KEYWORD_ONLY and "*" not in expected:
                expected.append("*")
            expected.append(parameter.name)
        assert [written_name for written_name, _ in parameters] == expected, name
        defaults = {parameter.name: parameter.default for parameter in real}
        for written_name, default in parameters:
            if default is not None:
                assert ast.literal_eval(default) == defaults[written_name], (name, written_name)
