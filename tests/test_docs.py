"""The docs hold together: a short README, every page under docs/ reachable from it by links,
and every relative link (and #anchor) resolves. Any new page under docs/ is covered."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 200
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _pages() -> list[Path]:
    return [README, REPO / "CHANGELOG.md", *sorted((REPO / "docs").rglob("*.md"))]


def _prose(path: Path) -> list[str]:
    """The page's lines outside code blocks."""
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return out


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in _prose(path) if re.match(r"#{1,6} ", line)}


def _links(path: Path) -> list[str]:
    return [
        m for line in _prose(path) for m in _LINK.findall(line) if not re.match(r"[a-z]+:", m)
    ]  # http(s):, mailto: are not ours to check


def test_readme_is_short_and_keeps_the_space_config_and_the_test_command():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    assert text.startswith("---\n") and "\nsdk: gradio\n" in text.split("\n---\n")[0]
    assert "python -m pytest -q" in (REPO / ".ci" / "run").read_text()
    assert "&& python -m pytest -q\n" in text


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for page in _pages():
        for link in _links(page):
            target, _, anchor = link.partition("#")
            dest = (page.parent / target).resolve() if target else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {link}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(REPO)}: {link} (no such heading)")
    assert broken == []


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for link in _links(page):
            dest = (page.parent / link.partition("#")[0]).resolve()
            if dest.suffix == ".md" and dest.is_file() and dest not in seen:
                seen.add(dest)
                todo.append(dest)
    unlinked = [p.relative_to(REPO).as_posix() for p in _pages() if p.resolve() not in seen]
    assert unlinked == []


def test_docs_cite_nothing_outside_the_repository():
    for page in _pages():
        text = page.read_text()
        assert "/work/" not in text and "../shared" not in text, page
