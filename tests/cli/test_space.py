"""`python -m dt_playground space`: the staged folder is exactly a Space, staging is atomic,
bad input is one sentence and exit code 2 with nothing left behind, a push fails fast."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import metadata_load

from dt_playground.cli import space
from dt_playground.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
SPACE_TOP = {
    "app.py",
    "dt_playground",
    "pretrained",
    "requirements.txt",
    "packages.txt",
    "README.md",
    ".gitattributes",
}
SPACE_MAX_BYTES = 70 * 1024**2


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    """No token anywhere: no HF_TOKEN, and an empty HF_HOME (no cached login)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "st"))


def main(argv: list[str]) -> int:
    """The CLI's parser and verb, in this process (without `main`'s process-wide settings)."""
    args = build_parser().parse_args(argv)
    return args.fn(args)


def test_stage_holds_exactly_what_a_space_needs(tmp_path, capsys):
    out = tmp_path / "space"
    assert main(["space", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == SPACE_TOP
    files = [p for p in out.rglob("*") if p.is_file()]
    rels = {p.relative_to(out).as_posix() for p in files}
    assert not any("__pycache__" in r or r.endswith(".pyc") for r in rels)
    assert "pretrained/lunarlander-dt/model.safetensors" in rels
    assert {r for r in rels if r.startswith("dt_playground/")} == {
        p.relative_to(REPO).as_posix() for p in (REPO / "dt_playground").rglob("*.py")
    }
    assert sum(p.stat().st_size for p in files) <= SPACE_MAX_BYTES
    assert [p.name for p in tmp_path.iterdir()] == ["space"]  # no staging folder left


def test_space_readme_front_matter_is_the_space_config(tmp_path):
    out = tmp_path / "space"
    assert main(["space", "--out", str(out)]) == 0
    meta = metadata_load(out / "README.md")  # huggingface_hub's own reader
    pin = next(
        line.split("==")[1]
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.startswith("gradio==")
    )
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == pin and meta["license"] == "apache-2.0"
    assert meta == metadata_load(REPO / "README.md")  # one config for git push and `space`
    # the checkpoints travel in the Space, none is a Hub repo: no models:/datasets: claims
    assert "models" not in meta and "datasets" not in meta
    body = (out / "README.md").read_text().split("---", 2)[2]
    assert "2 vCPU" in body and str(REPO) not in body


def test_dry_run_lists_sizes_and_total_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "space"
    assert main(["space", "--dry-run", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split()[2:4] == ["total,", str(len(lines) - 1)]
    assert any(line.endswith("pretrained/lunarlander-dt/model.safetensors") for line in lines)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_force_replaces_a_folder_and_a_failed_stage_leaves_no_trace(tmp_path, monkeypatch):
    out = tmp_path / "space"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert main(["space", "--out", str(out), "--force"]) == 0
    assert {p.name for p in out.iterdir()} == SPACE_TOP
    copied, real_copy = [], space.shutil.copyfile

    def copy_then_fail(src, dst):  # the disk fills up half-way
        if len(copied) == 50:
            raise OSError("No space left on device")
        copied.append(dst)
        return real_copy(src, dst)

    monkeypatch.setattr(space.shutil, "copyfile", copy_then_fail)
    new = tmp_path / "new"
    with pytest.raises(OSError):
        main(["space", "--out", str(new)])
    assert copied and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space"]


def _refused(argv, capsys, tmp_path, before):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("space: ") and err.endswith(".")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing staged
    return err


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "../x", "user/", "us er/name"])
def test_malformed_repo_id_is_refused(repo_id, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    err = _refused(["space", "--push", repo_id, "--out", str(tmp_path / "o")], capsys, tmp_path, [])
    assert "USER/NAME" in err


def test_push_without_a_token_is_refused(no_token, tmp_path, capsys):
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _refused(
        ["space", "--push", "me/dt-playground", "--out", str(tmp_path / "o")],
        capsys,
        tmp_path,
        before,
    )
    assert "token" in err


def test_non_empty_out_is_refused_without_force(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "mine.txt").write_text("keep me")
    err = _refused(["space", "--out", str(tmp_path / "o")], capsys, tmp_path, ["o"])
    assert "--force" in err and [p.name for p in (tmp_path / "o").iterdir()] == ["mine.txt"]


def test_missing_pretrained_is_refused(tmp_path, capsys, monkeypatch):
    import dt_playground.paths as paths

    monkeypatch.setattr(paths, "PRETRAINED_DIR", tmp_path / "gone")
    monkeypatch.setenv("DTP_PRETRAINED_DIR", str(tmp_path / "also-gone"))
    err = _refused(["space", "--out", str(tmp_path / "o")], capsys, tmp_path, [])
    assert "DTP_PRETRAINED_DIR" in err and "gone" in err


def test_bad_input_exits_2_from_the_command_line(tmp_path):
    """The real CLI, as a user runs it: the code is 2 and the message one line."""
    env = {**os.environ, "HF_TOKEN": "hf_dummy"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "dt_playground",
            "space",
            "--push",
            "oops",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert not (tmp_path / "o").exists()


def test_push_without_network_fails_at_once(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nobody listens
    t0 = time.monotonic()
    assert main(["space", "--push", "me/dt-playground", "--out", str(tmp_path / "o")]) == 1
    assert time.monotonic() - t0 < space.NETWORK_TIMEOUT_S + 5
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Cannot reach" in err
    assert list(tmp_path.iterdir()) == []


def test_push_creates_a_gradio_space_and_uploads_the_staged_folder(tmp_path, monkeypatch):
    """What reaches the Hub, with the Hub replaced by a recorder."""
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))

        def upload_folder(self, folder_path, repo_id, **kw):
            names = {p.name for p in Path(folder_path).iterdir()}
            calls.append(("upload", repo_id, kw["repo_type"], names))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(space, "_reachable", lambda endpoint: None)
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert main(["space", "--push", "me/dt-playground", "--token", "hf_flag"]) == 0
    assert calls[0] == ("token", "hf_flag")  # --token before HF_TOKEN
    assert calls[1] == (
        "create",
        "me/dt-playground",
        {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True},
    )
    assert calls[2] == ("upload", "me/dt-playground", "space", SPACE_TOP)


def _fake_checkout(root: Path) -> Path:
    """A checkout with the clutter a working folder grows (caches, a venv, data, runs,
    tests) and one fake checkpoint; returns its pretrained folder."""
    import shutil

    for name in ("app.py", "requirements.txt", "packages.txt", "README.md", ".gitattributes"):
        shutil.copyfile(REPO / name, root / name)
    shutil.copytree(REPO / "dt_playground", root / "dt_playground")
    for junk in (
        "dt_playground/__pycache__/paths.cpython-311.pyc",
        "dt_playground/x.pyc",
        "dt_playground/.stage-1/a.py",
        ".venv/lib/big.so",
        "data/d.hdf5",
        "runs/r/model.safetensors",
        "tests/test_x.py",
        "benchmarks/b.py",
        "pretrained/.staging-x/config.json",
        "pretrained/a/__pycache__/c.pyc",
    ):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"junk\0")
    (root / "pretrained/a/config.json").write_text("{}")
    (root / "pretrained/a/model.safetensors").write_bytes(b"\0" * 100)
    return root / "pretrained"


def test_nothing_but_the_space_is_staged_from_a_cluttered_checkout(tmp_path):
    root = tmp_path / "checkout"
    root.mkdir()
    pretrained = _fake_checkout(root)
    entries = space.plan(root, pretrained)
    out = tmp_path / "space"
    space.stage(out, entries)
    rels = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {r.split("/")[0] for r in rels} == SPACE_TOP
    assert {r for r in rels if r.startswith("pretrained/")} == {
        "pretrained/a/config.json",
        "pretrained/a/model.safetensors",
    }
    assert not any(".pyc" in r or "/." in r for r in rels)
    assert (
        space.hub_refusals(entries, space.lfs_patterns((root / ".gitattributes").read_text())) == []
    )


def test_what_the_hub_would_refuse_is_found(tmp_path, capsys):
    """A binary file that .gitattributes does not route to LFS/Xet, or a file over 10 MB:
    the Hub would refuse the push (and `space` stages nothing)."""
    root = tmp_path / "checkout"
    root.mkdir()
    pretrained = _fake_checkout(root)
    (pretrained / "a" / "weights.raw").write_bytes(b"\0\1\2" * 10)
    (pretrained / "a" / "notes.json").write_text("x" * (space.HUB_FILE_LIMIT + 1))
    entries = space.plan(root, pretrained)
    refused = space.hub_refusals(entries, space.lfs_patterns((root / ".gitattributes").read_text()))
    assert refused == ["pretrained/a/notes.json (10.5 MB)", "pretrained/a/weights.raw (binary)"]
