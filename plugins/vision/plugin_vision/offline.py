"""What to say when dataset files or weights are not on disk: which files, and where to put them.

This machine never downloads. Where torchvision would fetch something, the plugin names the file
(and the address it comes from, to fetch on a machine that has network) and the folder it belongs in.
"""
from __future__ import annotations

import os
from pathlib import Path


def expected_files(cls, root: Path) -> tuple[Path, list[str], list[str]]:
    """(folder, file names, source addresses) that ``cls`` reads under ``root``, as far as it says."""
    folder, files, urls = root, [], []
    base = getattr(cls, "base_folder", None)
    if isinstance(base, str):
        folder = root / base
    for attr in ("train_list", "test_list"):
        files += [entry[0] for entry in getattr(cls, attr, None) or []]
    meta = getattr(cls, "meta", None)
    if isinstance(meta, dict) and "filename" in meta:
        files.append(meta["filename"])
    resources = getattr(cls, "resources", None)
    own_url = "url" in vars(cls) and "resources" not in vars(cls)  # EMNIST inherits MNIST's list
    if isinstance(resources, (list, tuple)) and resources and not files and not own_url:
        folder = root / cls.__name__ / "raw"  # the MNIST family's layout
        for entry in resources:
            url = entry[0] if isinstance(entry, (list, tuple)) else str(entry)
            name = os.path.basename(url)
            files.append(os.path.splitext(name)[0] if name.endswith(".gz") else name)
            mirrors = getattr(cls, "mirrors", None)
            urls.append((mirrors[0] + name) if mirrors and "://" not in url else url)
    for entry in getattr(cls, "file_list", None) or []:
        if isinstance(entry, (list, tuple)) and len(entry) >= 3:
            files.append(entry[2])
    url = getattr(cls, "url", None)
    if isinstance(url, str):
        urls.append(url)
        filename = getattr(cls, "filename", None)
        if isinstance(filename, str) and not files:
            files.append(filename)
    return folder, files, urls


def missing_files_message(name: str, cls, root, exc: Exception, download: bool, extra: dict) -> str:
    """One message: what vision.<name> looked for, where, and what to do about it."""
    root_path = Path(root).expanduser().resolve()
    folder, files, urls = expected_files(cls, root_path)
    which = f" ({', '.join(f'{k}={v!r}' for k, v in extra.items())})" if extra else ""
    said = str(exc).replace("You can use download=True to download it", "").strip().rstrip(".")
    present = [f for f in files if (folder / f).is_file() or (folder / (f + ".gz")).is_file()]
    if files and len(present) == len(files):  # all there: one of them is not what the class reads
        return (f"vision.{name}{which}: the files in {folder} are there but could not be read "
                f"({type(exc).__name__}: {said or 'no detail'}); replace the damaged file(s) with good copies")
    head = (f"vision.{name}{which}: download = true, but this machine downloads nothing. " if download
            else f"vision.{name}{which}: dataset files not found. ")
    if files:
        what = f"put {', '.join(files)} in {folder}"
        if folder.name == "raw":  # the MNIST family (see local_files.py) reads both
            what += " (unpacked, or the .gz files as published)"
    else:
        what = (f"put the files in the layout torchvision.datasets.{name} reads under {root_path} "
                f"(see its documentation)")
    source = f" (they come from {', '.join(urls)}; fetch them on a machine with network)" if urls else ""
    detail = f" [torchvision: {said}]" if said else ""
    return head + what + source + ", or set root to the folder that holds them" + detail


def hub_file(url: str) -> Path:
    """Where torch.hub keeps (and looks for) a downloaded weights file."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
