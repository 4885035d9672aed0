"""Reading labelled text from local files, with bad rows named by file and line.

Every reader returns ``(text, label)`` string pairs. A bad row (empty text, bytes that are not
UTF-8, a row with the wrong number of fields, a missing label) stops reading with a
``KernelError`` naming the file and line, unless the user chose ``on_bad = "skip"``: then the
row is left out and the count of skipped rows is printed once per file, with the first reason.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from kernel import KernelError

ON_BAD = ("error", "skip")


class BadRows:
    """Raise on the first bad row, or count them (``on_bad="skip"``)."""

    def __init__(self, file, on_bad: str, who: str):
        if on_bad not in ON_BAD:
            raise KernelError(f"{who}: on_bad must be 'error' or 'skip', not {on_bad!r}")
        self.file, self.skip, self.who = Path(file), on_bad == "skip", who
        self.count, self.first = 0, None

    def __call__(self, where: str, why: str):
        message = f"{self.file} {where}: {why}"
        if not self.skip:
            raise KernelError(f"{self.who}: {message} (fix the file, or set on_bad = \"skip\" to leave "
                              f"such rows out)")
        self.count += 1
        self.first = self.first or f"{where}: {why}"

    def done(self):
        if self.count:
            print(f"{self.who}: skipped {self.count} bad row(s) of {self.file} (first, {self.first})",
                  file=sys.stderr)
        return self.count


def read_text(file, encoding: str, who: str) -> tuple[str, bool]:
    """The file's text and whether it decoded cleanly; undecodable bytes survive as surrogates
    (``surrogateescape``) so that the row holding them can be named."""
    file = Path(file)
    if not file.is_file():
        raise KernelError(f"{who}: file not found: {file}")
    data = file.read_bytes()
    if data.startswith(b"\xef\xbb\xbf") and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        data = data[3:]  # the byte-order mark spreadsheets write: not part of the first column's name
    try:
        return data.decode(encoding), True
    except UnicodeDecodeError:
        return data.decode(encoding, errors="surrogateescape"), False
    except LookupError:
        raise KernelError(f"{who}: unknown encoding {encoding!r}") from None


def undecodable(text: str, encoding: str = "utf-8") -> str | None:
    """A description of the first undecodable byte in a field decoded with surrogateescape."""
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            return (f"byte 0x{ord(ch) - 0xDC00:02x} is not valid {encoding} text (if the file is in another "
                    f"encoding, set it: encoding = \"latin-1\", \"cp1252\", ...)")
    return None


def column_index(header: list[str] | None, column, role: str, file, who: str) -> int:
    """The position of a column given by name (with a header) or by number."""
    if isinstance(column, int) and not isinstance(column, bool):
        width = len(header) if header else None
        if column < 0 or (width is not None and column >= width):
            raise KernelError(f"{who}: {file} has no column {column} ({role}); it has {width} columns, "
                              f"numbered from 0")
        return column
    if header is None:
        raise KernelError(f"{who}: {role} {column!r} is a name, but header = false; give the column's number")
    if column not in header:
        raise KernelError(f"{who}: {file} has no column {column!r} ({role}_column); its columns are: "
                          f"{', '.join(header)}")
    return header.index(column)


def read_delimited(file, text_column, label_column, delimiter: str = ",", header: bool = True,
                   encoding: str = "utf-8", on_bad: str = "error", who: str = "text.csv",
                   join_columns: tuple = ()) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a CSV/TSV file. ``join_columns``: more text columns appended with a space."""
    text, clean = read_text(file, encoding, who)
    bad = BadRows(file, on_bad, who)
    csv.field_size_limit(2**31 - 1)  # long reviews are normal
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    names = None
    if header:
        names = next(reader, None)
        if names is None:
            raise KernelError(f"{who}: {file} is empty")
    ti = column_index(names, text_column, "text", file, who)
    li = column_index(names, label_column, "label", file, who)
    more = [column_index(names, c, "text", file, who) for c in join_columns]
    width = len(names) if names else None
    rows = []
    end = reader.line_num  # a quoted field may hold newlines: a row is named by the line it starts on
    for row in reader:
        where, end = f"line {end + 1}", reader.line_num
        if not row:
            continue  # blank line
        if width is None:
            width = len(row)
        if len(row) != width:
            bad(where, f"{len(row)} fields, but {'the header has' if names else 'the first row has'} {width}")
            continue
        if max(ti, li, *more) >= len(row):
            bad(where, f"{len(row)} fields; no column {max(ti, li, *more)}")
            continue
        sample = " ".join([row[ti]] + [row[i] for i in more])
        label = row[li].strip()
        if not clean:
            why = undecodable(sample, encoding) or undecodable(label, encoding)
            if why:
                bad(where, why)
                continue
        if not sample.strip():
            bad(where, "the text is empty")
            continue
        if not label:
            bad(where, "the label is empty")
            continue
        rows.append((sample, label))
    bad.done()
    if not rows:
        raise KernelError(f"{who}: {file} holds no usable rows")
    return rows


def read_jsonl(file, text_field: str, label_field: str, encoding: str = "utf-8", on_bad: str = "error",
               who: str = "text.jsonl") -> list[tuple[str, str]]:
    """``(text, label)`` pairs from a file of one JSON object per line."""
    text, clean = read_text(file, encoding, who)
    bad = BadRows(file, on_bad, who)
    rows, seen_fields = [], None
    for line_no, line in enumerate(text.splitlines(), 1):
        where = f"line {line_no}"
        if not line.strip():
            continue
        if not clean and undecodable(line, encoding):
            bad(where, undecodable(line, encoding))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad(where, f"not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            bad(where, f"a JSON {type(obj).__name__}, not an object")
            continue
        seen_fields = seen_fields or list(obj)
        for field, role in ((text_field, "text"), (label_field, "label")):
            if field not in obj and not rows and not bad.count:
                raise KernelError(f"{who}: {file} {where} has no field {field!r} ({role}_field); its fields are: "
                                  f"{', '.join(obj)}")
        if text_field not in obj or label_field not in obj:
            missing = text_field if text_field not in obj else label_field
            bad(where, f"no field {missing!r}")
            continue
        sample, label = obj[text_field], obj[label_field]
        if not isinstance(sample, str) or not sample.strip():
            bad(where, "the text is empty" if isinstance(sample, str) or sample is None
                else f"the text is a {type(sample).__name__}, not a string")
            continue
        if label is None or (isinstance(label, str) and not label.strip()):
            bad(where, "the label is empty")
            continue
        rows.append((sample, str(label).strip()))
    bad.done()
    if not rows:
        raise KernelError(f"{who}: {file} holds no usable rows")
    return rows


def read_folder(root, extension: str, encoding: str, on_bad: str, who: str,
                classes: list[str] | None = None) -> list[tuple[str, str]]:
    """``(text, class folder name)`` for every file in ``root/<class>/``."""
    root = Path(root)
    if not root.is_dir():
        raise KernelError(f"{who}: folder not found: {root} (expected one sub-folder of {extension} files per class)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir()) if classes is None else list(classes)
    if not folders:
        raise KernelError(f"{who}: {root} has no sub-folders; put the {extension} files of each class in "
                          f"a folder named after the class")
    bad = BadRows(root, on_bad, who)
    rows = []
    for name in folders:
        folder = root / name
        if not folder.is_dir():
            raise KernelError(f"{who}: folder not found: {folder}")
        for file in sorted(folder.glob(f"*{extension}")):
            where = f"file {file.relative_to(root)}"
            try:
                text = file.read_bytes().decode(encoding)
            except UnicodeDecodeError as exc:
                bad(where, f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not valid {encoding}")
                continue
            if not text.strip():
                bad(where, "the text is empty")
                continue
            rows.append((text, name))
    bad.done()
    if not rows:
        raise KernelError(f"{who}: no {extension} files under {root}/<class>/")
    return rows
