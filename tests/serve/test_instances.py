"""Per-instance folders: a live owner's folder stays, a dead one's goes, a reused pid is
told apart from the process that wrote the owner file."""

import json
import os
import subprocess
import sys
import time

from dt_playground.serve import instances
from dt_playground.serve.sessions import SessionStore


def _dead_pid() -> int:
    """The pid of a process that has exited (pids are not reused within a test)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _fake_instance(base, pid, identity, age_s=0.0):
    folder = base / f"inst-{pid}-abcdef"
    folder.mkdir(parents=True)
    (folder / instances.OWNER_FILE).write_text(json.dumps({"pid": pid, "identity": identity}))
    (folder / "session-file").write_text("x")
    old = time.time() - age_s
    os.utime(folder, (old, old))
    return folder


def test_a_live_owners_folder_is_kept_however_old(tmp_path):
    me = os.getpid()
    folder = _fake_instance(tmp_path, me, instances.process_identity(me), age_s=10 * 86400)
    assert instances.sweep(tmp_path) == []
    assert (folder / "session-file").exists()


def test_a_dead_owners_folder_is_removed_however_young(tmp_path):
    pid = _dead_pid()
    folder = _fake_instance(tmp_path, pid, "boot:123")
    assert instances.sweep(tmp_path) == [folder.name]
    assert not folder.exists()


def test_a_reused_pid_is_not_the_owner(tmp_path):
    """The pid lives (it is ours), but it is another process than the one that wrote the
    owner file: its start time differs."""
    me = os.getpid()
    identity = instances.process_identity(me)
    assert identity is not None  # Linux: /proc tells processes apart
    boot, ticks = identity.rsplit(":", 1)
    folder = _fake_instance(tmp_path, me, f"{boot}:{int(ticks) - 1}")
    assert instances.owner_alive({"pid": me, "identity": identity})
    assert not instances.owner_alive({"pid": me, "identity": f"{boot}:{int(ticks) - 1}"})
    assert instances.sweep(tmp_path) == [folder.name]


def test_ownerless_leftovers_go_by_age_only(tmp_path):
    young = tmp_path / "inst-1-aa"
    young.mkdir()
    old_legacy = tmp_path / "0123abcd"  # an older version's session folder
    old_legacy.mkdir()
    then = time.time() - 2 * instances.STALE_AGE_S
    os.utime(old_legacy, (then, then))
    assert instances.sweep(tmp_path) == ["0123abcd"]
    assert young.exists()


def test_two_stores_on_one_machine_keep_to_themselves(tmp_path):
    first = SessionStore.for_instance(tmp_path / "sessions", tmp_path / "videos")
    first.clean_start()
    sid = first.new()
    session = first.get(sid)
    session.dir.mkdir(parents=True)
    (session.dir / "upload").write_text("mine")
    video = first.video_path(sid, "clip")
    video.write_bytes(b"mp4")
    second = SessionStore.for_instance(tmp_path / "sessions", tmp_path / "videos")
    second.clean_start()
    assert second.root != first.root and second.videos_root != first.videos_root
    assert (session.dir / "upload").read_text() == "mine" and video.exists()
    instances.release(second.root)
    assert not second.root.exists() and first.root.exists()


def test_an_instance_removes_only_its_own_folder_at_exit(tmp_path):
    """A second process claims folders and exits: they are gone, ours stay."""
    mine = instances.claim(tmp_path)
    code = (
        "import sys; from dt_playground.serve.sessions import SessionStore; "
        "s = SessionStore.for_instance(sys.argv[1], sys.argv[2]); "
        "(s.root / 'f').write_text('x'); print(s.root.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(tmp_path / "v")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    theirs = out.stdout.strip()
    assert theirs.startswith("inst-") and not (tmp_path / theirs).exists()
    assert mine.exists() and instances.read_owner(mine)["pid"] == os.getpid()
