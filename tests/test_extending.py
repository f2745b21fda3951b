"""docs/extending.md stays true: the files it names exist, and every report and preset is
documented where its checklist says."""
from __future__ import annotations

import re

from reports.__main__ import parser
from reports.build import REPORTS
from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "extending.md"
README = (ROOT / "README.md").read_text()


def _section(text: str, heading: str) -> str:
    """The text under a '## heading' up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_every_file_the_guide_names_exists():
    named = set(re.findall(r"`((?:conf|harness|slide_core|baselines|reports|tests|contract|docs)/[\w./]+\.(?:py|yaml|md))`",
                           GUIDE.read_text()))
    assert len(named) > 10  # the pattern still finds the guide's paths
    missing = sorted(p for p in named if "<" not in p and not (ROOT / p).exists())
    assert not missing, f"docs/extending.md names files that do not exist: {missing}"


def test_every_report_is_offered_by_the_cli_and_named_in_the_readme():
    choices = next(a.choices for a in parser()._actions if a.dest == "report")
    assert list(choices) == [*REPORTS, "all"]
    section = _section(README, "Reports")
    assert not [name for name in REPORTS if f"`{name}`" not in section]


def test_every_preset_has_its_readme_row():
    rows = _section(README, "Sweep presets")
    presets = sorted(p.stem for p in (ROOT / "conf" / "preset").glob("*.yaml"))
    assert presets and not [p for p in presets if f"| {p} |" not in rows]
