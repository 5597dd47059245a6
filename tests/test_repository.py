"""Nothing in the repository would be refused by a push to a Hugging Face Space: the Hub
refuses a binary file, or one over 10 MB, stored as a plain git object instead of through
LFS/Xet. Git itself says which files the root .gitattributes routes to LFS."""

import shutil
import subprocess
from pathlib import Path

import pytest

from dt_playground.cli.space import HUB_FILE_LIMIT, is_binary, lfs_patterns, routed

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.fixture(scope="module")
def tracked() -> dict[str, bool]:
    """Every tracked file -> whether git routes it to LFS (filter=lfs)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    files = [f for f in _git("ls-files", "-z").split("\0") if f and (REPO / f).is_file()]
    out = _git("check-attr", "-z", "--stdin", "filter", stdin="\0".join(files)).split("\0")
    triples = zip(out[0::3], out[1::3], out[2::3])
    return {path: value == "lfs" for path, _, value in triples}


def test_no_tracked_file_would_be_refused_by_a_space(tracked):
    refused = [
        f
        for f, lfs in tracked.items()
        if not lfs and ((REPO / f).stat().st_size > HUB_FILE_LIMIT or is_binary(REPO / f))
    ]
    assert refused == []
    weights = [f for f in tracked if f.endswith(".safetensors")]
    assert weights and all(tracked[f] for f in weights)  # the check saw the binaries


def test_space_staging_reads_gitattributes_as_git_does(tracked):
    """`space` checks the staged files with its own reading of .gitattributes: it must agree
    with git on every tracked file."""
    patterns = lfs_patterns((REPO / ".gitattributes").read_text())
    assert {f: routed(f, patterns) for f in tracked} == tracked
