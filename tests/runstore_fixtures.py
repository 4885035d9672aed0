"""Run directories written in the exact run-store format (docs/run-store.md), for the report and
dashboard tests and benchmark: run.json, metrics.jsonl, artifacts (reports, samples as real PNGs and
WAVs, confusion matrix). Curves follow a simple law of a run's ``quality`` so tests know the best run.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import math
import os
import socket
import struct
import wave
import zlib
from pathlib import Path

CLASSES = ["zero", "one", "two"]


def png_bytes(width: int = 8, height: int = 8, shade: int = 128) -> bytes:
    """A real grey PNG, written by hand (zlib + CRC) so the fixture needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes((shade + 7 * (x + y)) % 256 for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def wav_bytes(seconds: float = 0.1, rate: int = 8000, freq: float = 440.0) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


def metric_row(epoch: int, quality: float, start: float = 1_790_000_000.0, steps_per_epoch: int = 10) -> dict:
    """One line of metrics.jsonl: accuracy rises towards ``quality``, loss falls faster for better runs."""
    return {"epoch": epoch, "step": epoch * steps_per_epoch, "time": start + 3.0 * epoch, "elapsed_s": 3.0 * epoch,
            "lr": 1e-3, "train/loss": round(2.0 * math.exp(-epoch * quality) * 0.9, 6),
            "train/accuracy": round(min(1.0, quality * (1 - math.exp(-epoch / 2)) + 0.05), 6),
            "valid/loss": round(2.0 * math.exp(-epoch * quality), 6),
            "valid/accuracy": round(quality * (1 - math.exp(-epoch / 2)), 6)}


def append_epoch(run_dir: Path, row: dict):
    """What the trainer does at the end of an epoch: one line appended and flushed."""
    with open(Path(run_dir) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def write_run_json(run_dir: Path, info: dict):
    tmp = Path(run_dir) / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, Path(run_dir) / "run.json")


def write_run(runs_root: Path, *, workflow: str = "digits", model: str = "mlp", use: str = "kernel.mlp",
              quality: float = 0.8, epochs: int = 5, epochs_done: int | None = None, status: str = "completed",
              params: dict | None = None, lr: float = 1e-3, fingerprint: str = "3f9a1c2e7b6d", seed: int = 0,
              tags=(), created: str | None = None, index: int = 0, artifacts: bool = True, samples: int = 4,
              audio: bool = False, pid: int | None = None, param_count: int = 12345) -> Path:
    """A complete run directory; ``epochs_done`` lines of metrics (all ``epochs`` by default)."""
    runs_root = Path(runs_root)
    created_at = dt.datetime(2026, 11, 22, 8, 0, 0, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=index)
    created = created or created_at.isoformat().replace("+00:00", "Z")
    slug = "".join(c if c.isalnum() or c in "_." else "-" for c in model).strip("-")  # as the store names runs
    run_id = f"{workflow}-{slug}-{created_at:%Y%m%d-%H%M%S}-{index:04x}"
    run_dir = runs_root / run_id
    run_dir.mkdir(parents=True)
    done = epochs if epochs_done is None else epochs_done
    rows = [metric_row(e, quality) for e in range(1, done + 1)]
    for row in rows:
        append_epoch(run_dir, row)
    best = max(rows, key=lambda r: r["valid/accuracy"]) if rows else None
    info = {
        "id": run_id, "workflow": workflow, "model": model, "model_index": index, "use": use,
        "status": status, "reason": "interrupted by the user" if status == "interrupted" else None,
        "created": created, "started": created, "ended": None if status == "running" else created,
        "duration_s": None if status == "running" else 3.0 * done, "fingerprint": fingerprint, "seed": seed,
        "tags": list(tags),
        "spec": {"name": workflow, "dataset": {"use": "kernel.synthetic"}, "models": [{"use": use}]},
        "params": {"num_classes": len(CLASSES), "in_channels": 1, **(params or {})},
        "defaults": {"loss": "torch.nn.CrossEntropyLoss", "metrics": ["kernel.accuracy"], "batch_size": 32,
                     "epochs": epochs, "optimizer": {"use": "torch.optim.AdamW", "lr": lr}, "scheduler": None,
                     "device": "cpu", "precision": "32", "monitor": "valid/accuracy", "mode": "max", "num_workers": 0},
        "param_count": param_count, "epochs": epochs, "epochs_done": done,
        "monitor": "valid/accuracy", "mode": "max",
        "best": {"epoch": best["epoch"], "valid/accuracy": best["valid/accuracy"], "valid/loss": best["valid/loss"]} if best else {},
        "final": {"epoch": rows[-1]["epoch"], "valid/accuracy": rows[-1]["valid/accuracy"]} if rows else {},
        "classes": CLASSES, "versions": {"python": "3.11", "torch": "2.11.0", "kernel": "0.1.0"},
        "pid": pid if pid is not None else 999_999_999, "host": socket.gethostname(),
    }
    write_run_json(run_dir, info)
    if artifacts:
        write_artifacts(run_dir, quality, samples=samples, audio=audio)
    return run_dir


def write_artifacts(run_dir: Path, quality: float, samples: int = 4, audio: bool = False):
    art = Path(run_dir) / "artifacts"
    (art / "reports").mkdir(parents=True, exist_ok=True)
    (art / "reports" / "kernel.class_balance.json").write_text(json.dumps({
        "title": "Class balance", "values": {"classes": 3, "imbalance ratio": 1.25},
        "table": [{"split": "train", "class": c, "count": 40 + i} for i, c in enumerate(CLASSES)],
        "suggestions": {"class_weights": [1.0, 0.98, 0.96]}}))
    (art / "reports" / "kernel.class_balance.png").write_bytes(png_bytes(32, 16, 40))
    folder = art / "samples"
    folder.mkdir(exist_ok=True)
    entries = []
    for i in range(samples):
        (folder / f"{i}_input.png").write_bytes(png_bytes(8, 8, 30 * i))
        (folder / f"{i}_target.png").write_bytes(png_bytes(8, 8, 200))
        (folder / f"{i}_prediction.png").write_bytes(png_bytes(8, 8, 100))
        entry = {"index": i, "split": "valid", "input": f"{i}_input.png", "target": f"{i}_target.png",
                 "prediction": f"{i}_prediction.png", "target_text": CLASSES[i % 3],
                 "prediction_text": f"{CLASSES[(i + (i == 3)) % 3]} (90%)"}
        if audio:  # a sound renderer's input: the file's suffix says how the report shows it
            (folder / f"{i}_input.png").unlink()
            (folder / f"{i}_input.wav").write_bytes(wav_bytes())
            entry["input"] = f"{i}_input.wav"
        entries.append(entry)
    (folder / "samples.json").write_text(json.dumps(entries))
    n = round(40 * quality)
    (art / "confusion_matrix.json").write_text(json.dumps(
        {"classes": CLASSES, "matrix": [[n, 40 - n, 0], [2, n, 40 - n - 2], [0, 1, n]]}))


class DashboardProcess:
    """``kernel dashboard --port 0`` as a real subprocess in a workspace; ``url`` is read from its first line."""

    def __init__(self, workspace: Path, *args: str):
        import subprocess
        import sys

        self.proc = subprocess.Popen([sys.executable, "-m", "kernel.cli", "dashboard", "--port", "0", *args],
                                     cwd=workspace, env={**os.environ, "KERNEL_HOME": str(workspace)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.banner = self.proc.stdout.readline()
        if "http://" not in self.banner:
            self.proc.kill()
            raise RuntimeError(f"the dashboard did not start: {self.banner}{self.proc.stderr.read()}")
        self.url = self.banner.split(" at ", 1)[1].split()[0].rstrip("/")
        self.host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        self.port = int(port)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_request(host: str, port: int, target: str, method: str = "GET", headers: dict | None = None) -> tuple[int, bytes]:
    """Send a request line exactly as given (a browser or urllib would normalise ``..`` away)."""
    import socket as _socket

    headers = {"Host": f"{host}:{port}", "Connection": "close", **(headers or {})}
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines.append("Content-Length: 0")
    with _socket.create_connection((host, port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
