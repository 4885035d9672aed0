"""Checkpoints: plain ``torch.save`` files, written atomically, with a checksum of their content.

A checkpoint is ``{"format": 1, "checksum": sha256, "state": {...}}`` where the checksum covers every
tensor's bytes and every other value of ``state``. It is read with ``torch.load(weights_only=True)``
(a checkpoint cannot run code) and the checksum is checked, so a truncated or altered file is
refused with a clear error; :func:`load_newest` then falls back to the newest good one.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..errors import KernelError

NAMES = ("last.pt", "previous.pt", "best.pt")


class CheckpointError(KernelError):
    pass


def digest(obj) -> str:
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


# The bytes fed to the hash define the checksum of every checkpoint ever written: how they are fed
# (in how many pieces, from which buffer) may change, the bytes may not.
_SCALARS = (int, float, str, bool, type(None))


def _feed(h, obj):
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # the tensor's own memory, not a copy
    elif isinstance(obj, dict):
        h.update(b"{")
        for k, v in obj.items():
            h.update(repr(k).encode())
            _feed(h, v)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[" if isinstance(obj, list) else b"(")
        if all(type(v) in _SCALARS for v in obj):  # Python's RNG state: 625 numbers in one update
            h.update("".join(map(repr, obj)).encode())
        else:
            for v in obj:
                _feed(h, v)
        h.update(b"]")
    else:
        h.update(repr(obj).encode())


def save(path, state: dict):
    """Write ``state`` to ``path`` atomically: temporary file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": 1, "checksum": digest(state), "state": state}, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a state that cannot be saved (or a full disk) leaves no debris
        raise
    os.replace(tmp, path)


def load(path, map_location="cpu") -> dict:
    """The state saved in ``path``; CheckpointError when it is missing, truncated or altered."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(data, dict) or "state" not in data or "checksum" not in data:
        raise CheckpointError(f"{path} is not a kernel checkpoint")
    if digest(data["state"]) != data["checksum"]:
        raise CheckpointError(f"checkpoint {path} is damaged: its checksum does not match its content")
    return data["state"]


def load_newest(folder, names=NAMES) -> tuple[dict, Path, list[str]]:
    """The good checkpoint of ``folder`` that is furthest along; also the problems met on the way."""
    problems, best = [], None
    for name in names:
        path = Path(folder) / name
        if not path.exists():
            continue
        try:
            state = load(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        key = (state.get("epoch", 0), state.get("batches_done", 0))
        if best is None or key > best[0]:
            best = (key, state, path)
    if best is None:
        detail = ("; ".join(problems)) if problems else "no checkpoint was written yet"
        raise CheckpointError(f"no usable checkpoint in {folder}: {detail}")
    return best[1], best[2], problems


# what kernel.load needs from a finished run; the optimizer, scheduler and RNG states are for resuming
KEPT_WHEN_COMPLETE = ("epoch", "step", "model", "transforms", "best")


def slim(folder) -> Path | None:
    """After a run completes: keep one checkpoint with only what ``kernel.load`` needs.

    ``best.pt`` (else ``last.pt`` when no epoch ever improved) is rewritten with the model weights,
    the fitted transforms' state and the epoch, without optimizer, scheduler or RNG states; the
    other checkpoints go. Returns the checkpoint kept, or None (nothing good to keep: left alone).
    """
    folder = Path(folder)
    for name in ("best.pt", "last.pt", "previous.pt"):
        path = folder / name
        if not path.exists():
            continue
        try:
            state = load(path)
        except CheckpointError:
            continue
        kept = folder / ("best.pt" if name == "best.pt" else "last.pt")
        save(kept, {**{k: state.get(k) for k in KEPT_WHEN_COMPLETE}, "complete": True})
        for other in NAMES:
            if (folder / other) != kept:
                (folder / other).unlink(missing_ok=True)
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        return kept
    return None
