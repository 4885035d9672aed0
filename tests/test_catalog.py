"""The catalog: listing by kind and tag, showing parameters, suggestions for typos, import paths."""
from __future__ import annotations

import json

import pytest

import kernel
from kernel import KernelError
from kernel.catalog import normalize_kind, param_docs

GOOD_PLUGIN = """
from kernel import Component, hookimpl

def build(width: int = 4, depth: int = 2):
    '''A model for tests.

    Args:
        width: how wide each layer is.
        depth: how many layers.
    '''
    import torch
    return torch.nn.Linear(width, depth)

@hookimpl
def kernel_models():
    return [Component("acme.tiny", "ktest_acme_plugin:build", summary="Tiny test model", tags=("tabular",))]
"""


def test_list_by_kind_and_tag_as_json(cli):
    out = json.loads(cli("list", "metrics", "--tag", "regression", "--json").stdout)
    assert {c["name"] for c in out} == {"kernel.mse", "kernel.mae"}
    assert all(c["kind"] == "metric" for c in out)


def test_show_gives_types_defaults_and_docs(cli):
    proc = cli("show", "kernel.mlp", "--json")
    info = json.loads(proc.stdout)
    params = {p["name"]: p for p in info["params"]}
    assert params["hidden"] == {"name": "hidden", "type": "int", "default": 64, "required": False,
                                "doc": "width of each hidden layer."}
    assert params["input_shape"]["required"]


def test_show_accepts_import_paths(cli):
    info = json.loads(cli("show", "torch.optim.SGD", "--json").stdout)
    assert "lr" in {p["name"] for p in info["params"]}


def test_a_plugin_found_through_its_entry_point_is_listed_and_shown(cli, fake_plugin):
    env = fake_plugin("acme", GOOD_PLUGIN)
    listed = json.loads(cli("list", "models", "--tag", "tabular", "--json", env=env).stdout)
    assert [c["name"] for c in listed] == ["acme.tiny"] and listed[0]["plugin"] == "acme"
    shown = cli("show", "acme.tiny", env=env).stdout
    assert "how wide each layer is." in shown and "Tiny test model" in shown


def test_two_plugins_offering_one_name_give_an_error_naming_both(cli, fake_plugin):
    fake_plugin("acme", GOOD_PLUGIN, dist="acme-models")
    env = fake_plugin("copycat", GOOD_PLUGIN.replace("ktest_acme_plugin", "ktest_copycat_plugin"),
                      dist="copycat-models")
    proc = cli("show", "acme.tiny", env=env)
    assert proc.returncode == 2
    assert "acme-models" in proc.stderr and "copycat-models" in proc.stderr
    assert "acme-models and copycat-models" in cli("plugins", env=env).stdout.replace("\n", " ")


def test_disabled_plugins_are_not_imported(cli, fake_plugin):
    env = fake_plugin("bomb", "raise RuntimeError('imported although disabled')\n")
    assert "imported although disabled" in cli("plugins", env=env).stdout
    for extra_env, args in (({"KERNEL_DISABLE_PLUGINS": "bomb"}, ["plugins", "--json"]),
                            ({}, ["-p", "no:bomb", "plugins", "--json"])):
        info = json.loads(cli(*args, env={**env, **extra_env}).stdout)
        bomb = [p for p in info["plugins"] if p["name"] == "bomb"][0]
        assert bomb["status"] == "disabled" and bomb["error"] == ""


def test_trace_prints_each_hook_call(cli):
    proc = cli("list", "models", env={"KERNEL_TRACE_PLUGINS": "1"})
    assert "kernel_models() -> plugin kernel" in proc.stderr


def test_unknown_names_suggest_the_closest():
    with pytest.raises(KernelError, match="did you mean 'kernel.accuracy'"):
        kernel.get_catalog().get("kernel.acuracy")
    with pytest.raises(KernelError, match="unknown kind 'modles'.*did you mean 'models'"):
        normalize_kind("modles")
    assert normalize_kind("models") == normalize_kind("model") == "model"
    # a catalog's kinds include those plugins declare (kernel_kinds; tests/test_kinds.py has them)
    kinds = (*kernel.KINDS, "scorer")
    assert normalize_kind("Scorers", kinds) == normalize_kind("scorer", kinds) == "scorer"
    with pytest.raises(KernelError, match=r"unknown kind 'scorrer' \(did you mean 'scorers'\?\); kinds are: "
                                          r"datasets, .*, sections, scorers$"):
        normalize_kind("scorrer", kinds)
    assert kernel.get_catalog().kinds[:len(kernel.KINDS)] == kernel.KINDS


def test_the_generic_renderers_leave_attributions_to_the_plugins_that_make_them():
    catalog = kernel.get_catalog()
    meta = {"shape": (3, 8, 8), "dtype": "float32", "role": "attribution", "tags": (), "classes": ["a", "b", "c"],
            "input_shape": (3, 8, 8), "input_dtype": "float32"}
    for name in ("kernel.labels", "kernel.values"):
        assert catalog.create(name).score(meta) == 0
        assert catalog.create(name).score({**meta, "shape": (3,), "role": "prediction"}) > 0


def test_import_paths_work_wherever_a_name_does():
    sgd = kernel.get_catalog().create("torch.optim.SGD", params=[__import__("torch").zeros(1, requires_grad=True)], lr=0.1)
    assert type(sgd).__name__ == "SGD"
    counter = kernel.create("collections:Counter", a=2)
    assert counter["a"] == 2
    with pytest.raises(KernelError, match="no attribute 'AdamX'.*did you mean 'Adam'"):
        kernel.create("torch.optim.AdamX")


def test_a_component_of_another_kind_is_refused():
    with pytest.raises(KernelError, match="is a metric, not a model"):
        kernel.get_catalog().get("kernel.accuracy", "model")


@pytest.mark.parametrize("doc", [
    "Do it.\n\nArgs:\n    size (int): the size.\n    mode: how,\n        over two lines.\n\nReturns:\n    x\n",
    "Do it.\n\nParameters\n----------\nsize : int\n    the size.\nmode : str\n    how,\n    over two lines.\n",
    "Do it.\n\n:param size: the size.\n:param mode: how, over two lines.\n",
])
def test_parameter_docs_are_read_from_common_docstring_styles(doc):
    docs = param_docs(doc)
    assert docs["size"] == "the size."
    assert docs["mode"].startswith("how,")


def test_names_that_differ_only_in_case_get_a_suggestion():
    from kernel.errors import did_you_mean

    assert did_you_mean("text.AG_NEWS", ["text.ag_news", "text.imdb"]) == " (did you mean 'text.ag_news'?)"
    with pytest.raises(KernelError, match="did you mean 'kernel.synthetic'"):
        kernel.get_catalog().get("KERNEL.SYNTHETIC", "dataset")  # not taken for a module to import
    with pytest.raises(KernelError, match="expected the name of a model"):
        kernel.get_catalog().get({"use": 1}, "model")
