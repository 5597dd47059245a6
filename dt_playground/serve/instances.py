"""Per-instance folders: two app instances on one machine never touch each other's files.

Every running app claims its own subfolder of the shared sessions folder and of the
shared videos folder: ``inst-<pid>-<token>``, holding an ``owner.json`` with the pid and
the process's identity (boot id + start time, from ``/proc``; pids are reused, so a live
pid alone does not prove the owner lives). At start an instance removes only

- folders whose owner is dead (no such pid, or that pid is now another process), and
- folders without a readable owner file, or entries that are not instance folders (what
  an older version left), once they are older than ``STALE_AGE_S``;

a folder whose owner lives is never removed, whatever its age. At exit an instance
removes its own folders. Torch-free, gradio-free.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

OWNER_FILE = "owner.json"
PREFIX = "inst-"
STALE_AGE_S = 24 * 3600.0  # ownerless leftovers are removed after a day
_NAME = re.compile(r"^inst-(\d+)-[0-9a-f]+$")


def process_identity(pid: int) -> str | None:
    """What tells this pid's process apart from a later one with the same pid: the boot id
    and the process's start time in clock ticks since boot (Linux ``/proc``). None where
    the process does not exist or ``/proc`` can't say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None


def pid_exists(pid: int) -> bool:
    """Whether some process has this pid (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return False
    return True


def owner_alive(owner: dict) -> bool:
    """Whether the process that wrote ``owner`` still runs: its pid exists and, where the
    identity was recorded, the pid's process has that same identity (not a reused pid)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or not pid_exists(pid):
        return False
    recorded = owner.get("identity")
    if recorded is None:  # no /proc when it was written: the pid is all we know
        return True
    return process_identity(pid) == recorded


def read_owner(folder: Path) -> dict | None:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _age_s(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep(
    base: Path, keep: Path | None = None, max_age_s: float = STALE_AGE_S, now: float | None = None
) -> list[str]:
    """Remove what dead instances left in ``base`` (see the module's rules); ``keep`` is
    never touched. Returns the names removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(Path(base).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if keep is not None and entry.name == Path(keep).name:
            continue
        if _NAME.match(entry.name) and entry.is_dir():
            owner = read_owner(entry)
            if owner is not None:
                if owner_alive(owner):
                    continue  # never while the owner lives
            elif _age_s(entry, now) < max_age_s:
                continue  # being created right now, or just written by an old version
        elif _age_s(entry, now) < max_age_s:
            continue
        _remove(entry)
        removed.append(entry.name)
    return removed


def claim(base: Path, max_age_s: float = STALE_AGE_S) -> Path:
    """A fresh folder of this process under ``base``, with its owner file written before
    it appears under its final name (so no other instance sees it ownerless); what dead
    instances left is removed first."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    sweep(base, max_age_s=max_age_s)
    pid = os.getpid()
    name = f"{PREFIX}{pid}-{secrets.token_hex(6)}"
    staging = base / f".{name}.tmp"
    staging.mkdir()
    owner = {"pid": pid, "identity": process_identity(pid), "started": time.time()}
    (staging / OWNER_FILE).write_text(json.dumps(owner))
    os.replace(staging, base / name)
    return base / name


def release(folder: Path) -> None:
    """Remove this process's own folder (at exit); a folder another process owns stays."""
    owner = read_owner(Path(folder))
    if owner is not None and owner.get("pid") == os.getpid():
        shutil.rmtree(folder, ignore_errors=True)


def exit_on_sigterm() -> None:
    """Turn SIGTERM (how hosts and test runs stop the app) into the interrupt a server's
    main loop handles, so that the process exits normally and its folders are released."""
    import signal

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
