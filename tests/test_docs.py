"""docs/architecture.md's module map names every module there is, and none that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("store", "nlp", "inbox", "bot", "rapport", "rapport/cli")


def test_the_module_map_lists_every_module_and_no_other() -> None:
    """Regression: modules added in parallel (bot/thread.py, bot/privacy.py, store/owners.py, …)
    were missing from the docs, so a reader could not find where a rule lives."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    mapped = set(re.findall(r"^- `([\w/]+\.py)`", section, flags=re.MULTILINE))
    present = {str(p.relative_to(ROOT)) for package in PACKAGES for p in (ROOT / package).glob("*.py")
               if p.name != "__init__.py"}
    assert present - mapped == set(), "modules missing from the map"
    assert mapped - present == set(), "the map names modules that are gone"
