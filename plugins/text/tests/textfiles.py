"""Tiny labelled texts and files in real formats, written by the tests (imported by name)."""
from __future__ import annotations

from pathlib import Path

# Positive and negative snippets with a shared vocabulary, so that a model can learn the split.
POSITIVE = ["a wonderful, moving film", "great acting and a great story", "I loved it, truly wonderful",
            "a joyful and moving story", "great fun from start to end", "wonderful music and great acting"]
NEGATIVE = ["a dull, boring film", "terrible acting and a dull story", "I hated it, truly boring",
            "a tedious and boring mess", "terrible from start to end", "boring music and terrible acting"]


def rows(n_repeat: int = 1) -> list[tuple[str, str]]:
    out = []
    for _ in range(n_repeat):
        out += [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    return out


def write_csv(path: Path, records, header=("text", "label"), delimiter=","):
    """A CSV/TSV file written by the csv module (quoting as spreadsheets do)."""
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        if header:
            w.writerow(header)
        w.writerows(records)
    return path


def prepared(dataset: dict, models=("text.embedding_bag",)):
    """The kernel's plan for a workflow on ``dataset``: splits, fitted transforms, facts."""
    from kernel import prepare, Workflow

    return prepare(Workflow(dataset=dataset, models=[{"use": m} for m in models]))


# -- the official corpora's layouts, in their real formats (tiny) ------------------------------------
def _quoted_csv(path: Path, records, quote_all: bool = True):
    """Rows as the official CSV files have them: every field in double quotes (``""`` inside)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\n").writerows(records)
    return path


AG_NEWS = {  # (class index, title, description), as in ag_news_csv/train.csv (backslashes and all)
    "train": [("3", "Wall St. Bears Claw Back Into the Black (Reuters)",
               "Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics, are seeing green again."),
              ("1", "Venezuelans Vote Early in Referendum", 'Voters lined up "before dawn" to decide.'),
              ("2", "Phelps Wins Again", "Michael Phelps won his fifth gold medal."),
              ("4", "New Chip Is Faster", "A chip maker said its new processor is faster.")],
    "test": [("4", "Space Probe Lands", "A probe landed on a comet, scientists said."),
             ("2", "Cup Final Tonight", "The two sides meet in the final.")],
}


def ag_news(root: Path) -> Path:
    """``root/ag_news_csv/{train,test,classes}.csv``: as ag_news_csv.tgz unpacks."""
    folder = root / "ag_news_csv"
    for split, records in AG_NEWS.items():
        _quoted_csv(folder / f"{split}.csv", records)
    (folder / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n", encoding="utf-8")
    (folder / "readme.txt").write_text("AG's News Topic Classification Dataset\n", encoding="utf-8")
    return folder


YELP = {  # (polarity 1 negative / 2 positive, review with newlines written \n)
    "train": [("1", "Unfortunately, the frustration of being Dr. Goldberg's patient is a repeat.\\n\\nNever again."),
              ("2", 'Been going to Dr. Goldberg for over 10 years. "Great" staff.'),
              ("2", "Love this place.\\nWill be back.")],
    "test": [("1", "Cold food and slow service.")],
}


def yelp(root: Path) -> Path:
    folder = root / "yelp_review_polarity_csv"
    for split, records in YELP.items():
        _quoted_csv(folder / f"{split}.csv", records)
    (folder / "readme.txt").write_text("Yelp Review Polarity Dataset\n", encoding="utf-8")
    return folder


DBPEDIA = {  # (class 1-14, title, abstract): the label unquoted, the texts quoted, as in dbpedia_csv
    "train": [("1", "E. D. Abbott Ltd", " Abbott of Farnham E D Abbott Limited was a British coachbuilding business."),
              ("10", "Sturnira", " Sturnira is a genus of bats."),
              ("14", "The Hobbit", ' A children\'s "fantasy" novel by J. R. R. Tolkien.')],
    "test": [("3", "Ella Fitzgerald", " Ella Jane Fitzgerald was an American jazz singer.")],
}
DBPEDIA_CLASSES = ["Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder", "MeanOfTransportation",
                   "Building", "NaturalPlace", "Village", "Animal", "Plant", "Album", "Film", "WrittenWork"]


def dbpedia(root: Path) -> Path:
    import csv

    folder = root / "dbpedia_csv"
    folder.mkdir(parents=True, exist_ok=True)
    for split, records in DBPEDIA.items():
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            for label, title, abstract in records:
                fh.write(label + ",")
                csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow([title, abstract])
    (folder / "classes.txt").write_text("\n".join(DBPEDIA_CLASSES) + "\n", encoding="utf-8")
    return folder


IMDB = {  # split -> class -> [(file name id_rating, review)]
    "train": {"neg": [("0_3", "Story of a man who has unnatural feelings.<br /><br />Dull."),
                      ("1_1", "Terrible film, avoid it.")],
              "pos": [("0_9", "Bromwell High is a cartoon comedy.<br /><br />Loved it."),
                      ("1_10", "A wonderful, moving film."), ("2_7", "Great acting.")]},
    "test": {"neg": [("0_2", "Once again Mr. Costner has dragged out a movie.")],
             "pos": [("0_10", "I went and saw this movie last night.")]},
}


def imdb(root: Path) -> Path:
    """``root/aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt``, with the files beside them that are not read."""
    folder = root / "aclImdb"
    for split, classes in IMDB.items():
        for label, files in classes.items():
            (folder / split / label).mkdir(parents=True)
            for name, text in files:
                (folder / split / label / f"{name}.txt").write_text(text, encoding="utf-8")
        (folder / split / "labeledBow.feat").write_text("9 0:9 1:1\n", encoding="utf-8")
        (folder / split / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0453418/usercomments\n")
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "0_0.txt").write_text("An unlabelled review.", encoding="utf-8")
    (folder / "imdb.vocab").write_text("the\nand\n", encoding="utf-8")
    (folder / "README").write_text("Large Movie Review Dataset v1.0\n", encoding="utf-8")
    return folder


TREC = {  # file -> lines of "COARSE:fine question", Latin-1 encoded (the official files are)
    "train_5500.label": ["DESC:manner How did serfdom develop in and then leave Russia ?",
                         "ENTY:cremat What films featured the character Popeye Doyle ?",
                         "HUM:ind Who painted the Mona Lisa in the Caf\xe9 ?",
                         "LOC:city What is the capital of France ?",
                         "NUM:date When was Ozzy Osbourne born ?",
                         "ABBR:exp What does NASA stand for ?",
                         "HUM:gr What team won the World Series ?"],
    "TREC_10.label": ["NUM:date When did Hawaii become a state ?",
                      "LOC:city What city is the Eiffel Tower in ?",
                      "HUM:ind Who was Galileo ?"],
}


def trec(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in TREC.items():
        (root / name).write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return root
