"""docs/architecture.md says what the import contracts enforce and names every module: a layer added, moved
or renamed in pyproject.toml, or a module added or removed, fails here until the page says so too."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "architecture.md").read_text()
TEXT_BLOCKS = re.findall(r"```text\n(.*?)```", PAGE, re.S)
LAYER_LINE = re.compile(r"zstc_cli(?:\.\w+)+(?: \| zstc_cli(?:\.\w+)+)*")


def contracts() -> list[list[str]]:
    """Each layers contract's layers, top to bottom, with a container's layers named in full."""
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    out = []
    for contract in config["contracts"]:
        assert contract["type"] == "layers", f"describe the {contract['type']} contract on the page"
        prefix = [f"{container}." for container in contract.get("containers", [])] or [""]
        assert len(prefix) == 1
        layers = [" | ".join(prefix[0] + name.strip() for name in layer.split("|")) for layer in contract["layers"]]
        out.append(layers)
    return out


def test_the_page_draws_each_contract_layer_by_layer():
    drawn = [
        block.splitlines() for block in TEXT_BLOCKS if all(LAYER_LINE.fullmatch(line) for line in block.splitlines())
    ]
    assert drawn == contracts()


def test_the_page_names_every_module():
    tree = next(block for block in TEXT_BLOCKS if block.startswith("zstc_cli/"))
    named, folder = set(), ""
    for line in tree.splitlines()[1:]:
        found = re.match(r"^([│ ]*)[├└]── (\S+)", line)
        if not found:
            continue
        name = found.group(2)
        if len(found.group(1)) == 0:
            folder = name if name.endswith("/") else ""
            named.add(name)
        else:
            named.add(folder + name)
    package = ROOT / "zstc_cli"
    present = set()
    for path in package.rglob("*.py"):
        relative = path.relative_to(package)
        if len(relative.parts) == 1:
            present.add(relative.name)  # a top-level module, __init__.py included
        elif relative.name == "__init__.py":
            present.add(f"{relative.parent}/")  # a subpackage is named by its folder
        else:
            present.add(str(relative))
    assert named == present
