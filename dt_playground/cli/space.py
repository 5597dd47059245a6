"""`python -m dt_playground space`: stage the folder a Hugging Face Space runs, and push it.

The staged folder holds exactly what the Space needs (`SPACE_FILES`, the package, the shipped
checkpoints, a README whose front matter is the Space's config, and `.gitattributes`), so an
upload never carries a venv, data, runs or tests. Staging is atomic: the folder appears
complete or not at all. Bad input is one sentence and exit code 2, before anything is written.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from dt_playground.atomic import atomic_dir
from dt_playground.errors import PretrainedMissingError
from dt_playground.paths import IN_CHECKOUT, REPO_ROOT, pretrained_dir

SPACE_FILES = ("app.py", "requirements.txt", "packages.txt", ".gitattributes")
HUB_FILE_LIMIT = 10 * 1024**2  # the Hub refuses a plain-git file over 10 MB outside LFS/Xet
SPACE_HARDWARE = "CPU basic: 2 vCPU, 16 GB"
# The Space installs torch's CPU build: the default wheel on PyPI pulls gigabytes of CUDA.
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
NETWORK_TIMEOUT_S = 5.0

SPACE_BODY = """
# DT Playground

Pick an environment, a pretrained Decision Transformer and a target return (or `best`), and
watch the episode it plays: the return it achieved beside the return you asked for. Several
targets side by side, a target schedule that changes mid-episode, sweeps, comparisons with
BC and %BC, in-app training and a stitching lab that shows what a DT cannot do.

Everything runs on this Space's CPU ({hardware}); the checkpoints in `pretrained/` were
trained on datasets generated from shipped behaviour policies and seeds. Every event has an
API name: `gradio_client.Client("<this space>").view_api()` lists them.
"""


class SpaceInputError(ValueError):
    """Bad input to `space`: one sentence, exit code 2, nothing written."""


@dataclass(frozen=True)
class Entry:
    """One file of the staged Space: where it goes, and its source file or its text."""

    rel: str
    size: int
    src: Path | None = None
    text: str | None = None


def _walk(folder: Path, prefix: str) -> list[Entry]:
    """Every file under ``folder`` but caches, dot-files and half-written staging folders."""
    out = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if any(p.startswith(".") or p == "__pycache__" for p in parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            rel = "/".join((prefix, *parts))
            out.append(Entry(rel, path.stat().st_size, src=path))
    return out


def front_matter(root: Path = REPO_ROOT) -> dict:
    """The Space config: the repository README's front matter (one place for both a plain
    `git push` and this command), checked with huggingface_hub's own reader."""
    from huggingface_hub import metadata_load

    meta = metadata_load(root / "README.md") or {}
    missing = {"sdk", "app_file", "sdk_version", "license"} - set(meta)
    if missing:
        raise SpaceInputError(f"README.md's front matter lacks {', '.join(sorted(missing))}.")
    pin = re.search(r"^gradio==(\S+)", (root / "requirements.txt").read_text(), re.M)
    if pin and str(meta["sdk_version"]) != pin.group(1):
        raise SpaceInputError(
            f"README.md's sdk_version {meta['sdk_version']} is not "
            f"requirements.txt's gradio=={pin.group(1)}."
        )
    return meta


def space_readme(meta: dict) -> str:
    """The staged README: the Space's config as front matter, a short body for visitors."""
    from huggingface_hub import CardData, RepoCard

    card = RepoCard(
        f"---\n{CardData(**meta).to_yaml()}\n---\n" + SPACE_BODY.format(hardware=SPACE_HARDWARE)
    )
    return str(card)


def space_requirements(text: str) -> str:
    """requirements.txt as the Space installs it: torch from its CPU index."""
    return f"# torch's CPU build (PyPI's default wheel carries CUDA)\n{TORCH_CPU_INDEX}\n{text}"


def plan(root: Path = REPO_ROOT, pretrained: Path | None = None) -> list[Entry]:
    """Every file the Space gets, in order (``pretrained``: default `pretrained_dir()`);
    raises SpaceInputError when a part is missing."""
    if not (root / "app.py").is_file() or (root == REPO_ROOT and not IN_CHECKOUT):
        raise SpaceInputError(
            "space needs a checkout of DT Playground (app.py beside "
            "dt_playground/), not an installed package."
        )
    try:
        pretrained = pretrained or pretrained_dir()
    except PretrainedMissingError as err:
        raise SpaceInputError(str(err)) from None
    if not any(pretrained.glob("*/config.json")):
        raise SpaceInputError(
            f"No checkpoints in {pretrained}: a Space without them has nothing to play."
        )
    for name in SPACE_FILES:
        if not (root / name).is_file():
            raise SpaceInputError(f"{name} is missing from {root}.")
    readme = space_readme(front_matter(root))
    requirements = space_requirements((root / "requirements.txt").read_text())
    entries = [
        Entry("README.md", len(readme.encode()), text=readme),
        Entry("requirements.txt", len(requirements.encode()), text=requirements),
    ]
    entries += [
        Entry(n, (root / n).stat().st_size, src=root / n)
        for n in SPACE_FILES
        if n != "requirements.txt"
    ]
    entries += _walk(root / "dt_playground", "dt_playground")
    entries += _walk(pretrained, "pretrained")
    return entries


def lfs_patterns(gitattributes: str) -> list[str]:
    """The patterns a .gitattributes routes to LFS/Xet (``filter=lfs``)."""
    return [
        line.split()[0]
        for line in gitattributes.splitlines()
        if line.strip() and not line.startswith("#") and "filter=lfs" in line.split()
    ]


def routed(rel: str, patterns: list[str]) -> bool:
    """Whether .gitattributes ``patterns`` send ``rel`` to LFS (a pattern without a slash
    matches the file name at any depth, as git matches it)."""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name if "/" not in p else rel, p.lstrip("/")) for p in patterns)


def is_binary(path: Path) -> bool:
    """Git's own test: a NUL byte in the first 8000 bytes."""
    with open(path, "rb") as f:
        return b"\0" in f.read(8000)


def hub_refusals(entries: list[Entry], patterns: list[str]) -> list[str]:
    """What a push to a Space would refuse: a binary file, or one over 10 MB, that
    .gitattributes does not route to LFS/Xet."""
    bad = []
    for e in entries:
        if routed(e.rel, patterns):
            continue
        if e.size > HUB_FILE_LIMIT:
            bad.append(f"{e.rel} ({e.size / 1e6:.1f} MB)")
        elif e.src is not None and is_binary(e.src):
            bad.append(f"{e.rel} (binary)")
    return bad


def stage(out: Path, entries: list[Entry]) -> None:
    """Write ``entries`` into ``out`` atomically (temp folder + rename)."""
    with atomic_dir(out) as tmp:
        for e in entries:
            dst = tmp / e.rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if e.src is not None:
                shutil.copyfile(e.src, dst)
            else:
                dst.write_text(e.text or "")
        tmp.chmod(0o755)


def _check_out(out: Path, force: bool, root: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SpaceInputError(f"--out {out} is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpaceInputError(f"--out {out} is not empty; pass --force to replace it.")
    resolved = out.resolve()
    for inner in (root / "dt_playground", root / "pretrained"):
        if resolved.is_relative_to(inner.resolve()):
            raise SpaceInputError(f"--out {out} lies inside {inner.name}/, which it copies.")


def _token(args) -> str:
    from huggingface_hub import get_token

    token = args.token or os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SpaceInputError(
            "--push needs a token: pass --token, set HF_TOKEN or run `hf auth login`."
        )
    return token


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
        ok = _REPO_ID.fullmatch(repo_id) is not None
    except HFValidationError:
        ok = False
    if not ok:
        raise SpaceInputError(
            f"--push wants USER/NAME (letters, digits, '-', '_', '.'), got {repo_id!r}."
        )


def _reachable(endpoint: str) -> None:
    """Fail at once, in one sentence, when the Hub can't be reached (never hang)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        raise ConnectionError("HF_HUB_OFFLINE is set; unset it to push.")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=NETWORK_TIMEOUT_S).close()
    except OSError as err:
        raise ConnectionError(
            f"Cannot reach {endpoint} ({err.__class__.__name__}); nothing was pushed."
        ) from None


def push(folder: Path, repo_id: str, token: str) -> str:
    """Create the Space (gradio SDK; kept if it exists) and upload ``folder``: its URL."""
    from huggingface_hub import HfApi, constants

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        repo_type="space",
        commit_message="DT Playground: staged by `python -m dt_playground space`",
    )
    return f"{constants.ENDPOINT}/spaces/{repo_id}"


def _human(n: int) -> str:
    return f"{n / 1e6:7.2f} MB" if n >= 100_000 else f"{n / 1e3:7.1f} kB"


def run_space(args, root: Path = REPO_ROOT) -> int:
    """The `space` verb: check everything, then dry-run, stage and/or push."""
    if not (args.out or args.dry_run or args.push):
        raise SpaceInputError("space needs --out DIR, --dry-run or --push USER/NAME.")
    token = None
    if args.push:  # every check before anything is written
        _check_repo_id(args.push)
        token = _token(args)
        from huggingface_hub import constants

        try:
            _reachable(constants.ENDPOINT)  # before staging: a failed push fails at once
        except ConnectionError as err:
            print(f"space: {err}", file=sys.stderr)
            return 1
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_out(out, args.force, root)
    t0 = time.perf_counter()
    entries = plan(root)
    patterns = lfs_patterns((root / ".gitattributes").read_text())
    refused = hub_refusals(entries, patterns)
    if refused:
        raise SpaceInputError(
            "The Hub would refuse these files (not routed to LFS by "
            f".gitattributes): {', '.join(refused[:5])}."
        )
    total = sum(e.size for e in entries)
    if args.dry_run:
        for e in entries:
            print(f"{_human(e.size)}  {e.rel}")
        print(f"{_human(total)}  total, {len(entries)} files")
        return 0
    if out is None:
        tmp_root = Path(tempfile.mkdtemp(prefix="dtp-space-"))
        folder = tmp_root / "space"
    else:
        tmp_root, folder = None, out
    try:
        stage(folder, entries)
        print(
            f"staged {len(entries)} files, {total / 1e6:.1f} MB, in {folder} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        if args.push:
            try:
                url = push(folder, args.push, token or "")
            except Exception as err:  # the Hub's refusals: one sentence, not a traceback
                print(
                    f"space: the Hub refused the push: {str(err).splitlines()[0]}", file=sys.stderr
                )
                return 1
            print(f"pushed to {url} (it builds on {SPACE_HARDWARE})", file=sys.stderr)
    finally:
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)
    return 0


def cmd_space(args) -> int:
    try:
        return run_space(args)
    except SpaceInputError as err:
        print(f"space: {err}", file=sys.stderr)
        return 2


def add_space_parser(sub) -> None:
    """The `space` verb's flags."""
    sp = sub.add_parser("space", help="stage the Hugging Face Space folder; push it")
    sp.add_argument("--out", default="", help="stage the Space into this folder (atomic)")
    sp.add_argument("--force", action="store_true", help="replace a non-empty --out")
    sp.add_argument(
        "--dry-run",
        action="store_true",
        help="print the files with their sizes and the total; write nothing",
    )
    sp.add_argument(
        "--push",
        default="",
        metavar="USER/NAME",
        help="create the Space (gradio SDK) if needed and upload the staged folder",
    )
    sp.add_argument(
        "--token",
        default="",
        help="Hub token (default: $HF_TOKEN, else the cached `hf auth login`)",
    )
    sp.set_defaults(fn=cmd_space)
