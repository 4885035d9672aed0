"""Which renderer draws a tensor: the highest score, then the dataset's tags, then a plugin before
the kernel's generic renderers, then the name (kernel/rendering.py; docs/plugin-guide.md)."""
from __future__ import annotations

import pytest

import kernel
from kernel import Component
from kernel.rendering import choose_renderer


def fixed(score):
    class Fixed:
        def score(self, meta):
            return score

        def render(self, tensor, context):
            return "<p>drawn</p>"

    return Fixed


class FakeCatalog:
    """Only what the choice reads: the renderers, and how to build one."""

    def __init__(self, *components):
        self.components = list(components)

    def list(self, kind):
        return sorted(self.components, key=lambda c: c.name)

    def target(self, comp):
        return comp.target


def meta(tags, shape=(1, 64, 32)):
    return {"shape": shape, "dtype": "float32", "role": "input", "tags": tags, "classes": None}


def test_a_tie_goes_to_the_renderer_whose_tags_match_the_datasets():
    # "a.bitmap" comes first alphabetically (and first in the catalog): the tags decide, not the order
    catalog = FakeCatalog(Component("a.bitmap", fixed(0.9), tags=("image",)),
                          Component("z.spectrogram", fixed(0.9), tags=("sound",)))
    assert choose_renderer(catalog, meta(("sound", "classification")))[0] == "z.spectrogram"
    assert choose_renderer(catalog, meta(("image",)))[0] == "a.bitmap"


def test_a_higher_score_wins_over_matching_tags():
    catalog = FakeCatalog(Component("a.sure", fixed(0.95), tags=()),
                          Component("z.tagged", fixed(0.9), tags=("sound",)))
    assert choose_renderer(catalog, meta(("sound",)))[0] == "a.sure"


def test_a_plugin_renderer_wins_a_tie_with_a_generic_one_then_the_name_decides():
    catalog = FakeCatalog(Component("a.generic", fixed(0.5), tags=("generic",)),
                          Component("m.plugin", fixed(0.5), tags=()),
                          Component("n.plugin", fixed(0.5), tags=()))
    assert choose_renderer(catalog, meta(()))[0] == "m.plugin"


def test_a_renderer_that_cannot_draw_or_fails_is_left_out():
    class Broken:
        def score(self, meta):
            raise RuntimeError("boom")

    notes = []
    catalog = FakeCatalog(Component("a.broken", Broken), Component("b.zero", fixed(0.0)))
    with pytest.raises(kernel.KernelError, match="no renderer can draw a input of shape"):
        choose_renderer(catalog, meta(()), notes)
    assert notes == ["renderer a.broken failed to score: boom"]


@pytest.mark.parametrize("tags, shape, expected", [
    (("audio", "classification"), (1, 64, 32), "audio.spectrogram"),  # vision.bitmap scores 0.9 too
    (("vision", "classification"), (1, 64, 32), "vision.bitmap"),
    (("audio", "classification"), (1, 8000), "audio.sound"),
    (("vision",), (3, 32, 32), "vision.bitmap"),
])
def test_the_installed_plugins_renderers_are_chosen_by_the_rule(tags, shape, expected):
    catalog = kernel.get_catalog()
    if not {"audio.spectrogram", "vision.bitmap"} <= set(catalog.names("renderer")):
        pytest.skip("the vision and audio plugins are not installed")
    assert choose_renderer(catalog, meta(tags, shape))[0] == expected
