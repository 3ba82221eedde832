"""Saving and loading a profile: one JSON file written from `to_json`, read back by `from_json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self


class JsonFile:
    """For a record with `to_json()` and a classmethod `from_json(data)` (which checks the
    schema)."""

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")  # type: ignore[attr-defined]

    @classmethod
    def load(cls, path: Path | str) -> Self:
        return cls.from_json(json.loads(Path(path).read_text()))  # type: ignore[attr-defined]
