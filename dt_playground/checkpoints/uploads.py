"""Unpacking an uploaded checkpoint zip, treating every byte of it as hostile.

Only the known checkpoint files are taken, from the archive's root or one
folder deep, and a DT's return model (``returns/config.json`` and
``returns/model.safetensors``, `return_model.py`) and its critic (``critic/``, the same
two files, `offline/critic.py`) beside them. Sizes are
checked against the central directory *and* counted while inflating (a zip
can lie about them), encrypted entries and unknown compression methods are
refused, and every failure of `zipfile`/`zlib` becomes
a `CheckpointError`. The caller extracts into a staging folder
(`atomic.atomic_dir`), so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from dt_playground.checkpoints.layout import CRITIC_DIR, MAX_JSON_BYTES, RETURNS_DIR
from dt_playground.errors import CheckpointError

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 1000
# name -> the most bytes it may inflate to
ALLOWED_UPLOAD_FILES = {
    "config.json": MAX_JSON_BYTES,
    "model.safetensors": MAX_UPLOAD_BYTES,
    "card.json": 1024 * 1024,
    "README.md": 1024 * 1024,
    # a Hugging Face `transformers` DT folder's stats sidecar (see `hf.py`)
    "dt_playground.json": 1024 * 1024,
}
# The files of a return model, taken from a ``returns/`` folder beside them.
RETURN_MODEL_FILES = ("config.json", "model.safetensors")
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def extract_upload(archive: Path | str, dest: Path | str) -> Path:
    """Unpack the checkpoint files of zip ``archive`` into folder ``dest`` (created if
    missing; the caller stages it, so a refusal leaves nothing where readers look)."""
    archive, dest = Path(archive), Path(dest)
    try:
        if archive.stat().st_size > MAX_UPLOAD_BYTES:
            raise CheckpointError("The upload is larger than 64 MB")
        if not zipfile.is_zipfile(archive):
            raise CheckpointError("The upload is not a zip archive of a checkpoint folder")
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            taken = _extract(zf, dest)
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        KeyError,
        OverflowError,
    ) as exc:
        raise CheckpointError(f"The zip archive is corrupt ({type(exc).__name__})") from None
    if not taken:
        raise CheckpointError(
            f"The zip holds no checkpoint files (expected {sorted(ALLOWED_UPLOAD_FILES)})"
        )
    return dest


def _extract(zf: zipfile.ZipFile, dest: Path) -> int:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(f"The zip has more than {MAX_ENTRIES} entries")
    if sum(i.file_size for i in infos) > MAX_UPLOAD_BYTES:
        raise CheckpointError("The uploaded checkpoint is larger than 64 MB unpacked")
    wanted = {}
    for info in infos:
        parts = Path(info.filename.replace("\\", "/")).parts
        name = _upload_name(parts)
        if name is None:
            continue
        if name in wanted:
            raise CheckpointError(f"The zip holds more than one {name}")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"{name} is encrypted")
        if info.compress_type not in _METHODS:
            raise CheckpointError(f"{name} uses an unsupported compression method")
        cap = ALLOWED_UPLOAD_FILES[Path(name).name]
        if info.file_size > cap:
            raise CheckpointError(f"{name} is larger than {cap} bytes")
        wanted[name] = info
    total = 0
    for name, info in wanted.items():
        (dest / name).parent.mkdir(exist_ok=True)
        total += _copy_capped(zf, info, dest / name, ALLOWED_UPLOAD_FILES[Path(name).name])
        if total > MAX_UPLOAD_BYTES:
            raise CheckpointError("The uploaded checkpoint is larger than 64 MB unpacked")
    return len(wanted)


def _upload_name(parts: tuple[str, ...]) -> str | None:
    """Where an archive entry goes in the checkpoint folder (``config.json``,
    ``returns/model.safetensors``, ...), or None for an entry that is not taken."""
    if ".." in parts or not parts:
        return None
    name = parts[-1]
    if len(parts) >= 2 and parts[-2] in (RETURNS_DIR, CRITIC_DIR) and len(parts) <= 3:
        return f"{parts[-2]}/{name}" if name in RETURN_MODEL_FILES else None
    return name if name in ALLOWED_UPLOAD_FILES and len(parts) <= 2 else None


def _copy_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: Path, cap: int) -> int:
    """Inflate one entry, counting real bytes: the declared size may be a lie."""
    n = 0
    with zf.open(info) as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            n += len(chunk)
            if n > cap:
                raise CheckpointError(f"{out.name} inflates past {cap} bytes")
            dst.write(chunk)
    return n
