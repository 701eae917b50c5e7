"""The repository's paths and the JSON-lines files the tests write and read."""

from __future__ import annotations

from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
NYR = EXAMPLES / "new_years_resolutions.jsonl"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
