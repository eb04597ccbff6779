"""What issue 33 asked of the documents (item 1): the README a newcomer can read first, a
workshop guide in docs/ that it links, and no link in either that leads nowhere (the
measurements moved to docs/, so a moved or renamed page would break them silently)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def local_links(page: Path) -> list[str]:
    """The page's links to files of this repository (web addresses and in-page anchors left
    out), without their #anchor."""
    targets = [t.split("#")[0] for t in LINK.findall(page.read_text())]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_every_local_link_leads_to_a_file(page):
    path = ROOT / page
    missing = [t for t in local_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{page} links to files that are not there: {missing}"


def test_the_readme_sends_a_teacher_to_the_workshop_guide():
    readme = (ROOT / "README.md").read_text()
    first_part = readme.split("## From Python")[0]  # what the newcomer reads before the details
    assert "docs/workshop.md" in first_part
    assert "GRADIO_SERVER_NAME=0.0.0.0" in first_part  # serving a room
    assert "## The seven tabs, and what each one teaches" in first_part
    guide = (ROOT / "docs" / "workshop.md").read_text()
    assert "90-minute" in guide and "| minutes | tab |" in guide  # the plan, as a timetable
