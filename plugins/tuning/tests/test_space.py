"""The [tuning] table read and checked: distributions, conditions, and every mistake located."""
from __future__ import annotations

import pytest

import kernel
from plugin_tuning.section import Tuning
from plugin_tuning.space import decode, parse_space, sample

WORKFLOW = {"name": "w", "dataset": {"use": "kernel.synthetic", "num_samples": 64},
            "models": [{"use": "kernel.mlp", "hidden": 8}],
            "trainer": {"epochs": 2, "optimizer": {"use": "torch.optim.SGD", "lr": 0.1}}}


def problems(space=None, workflow=None, **settings):
    """The located problems of a workflow with this [tuning] table ([] when it is valid)."""
    table = {"space": space if space is not None else {"trainer.optimizer.lr": {"float": [1e-3, 1.0], "log": True}},
             **settings}
    try:
        kernel.Workflow(**{**WORKFLOW, **(workflow or {})}, tuning=table).validate_components()
    except kernel.WorkflowError as exc:
        return exc.problems
    return []


def test_a_valid_table_has_no_problem_and_the_kernel_keeps_it_aside():
    wf = kernel.Workflow(**WORKFLOW, tuning={"space": {"trainer.epochs": {"int": [1, 4]}}})
    assert problems() == [] and wf.sections == {"tuning": {"space": {"trainer.epochs": {"int": [1, 4]}}}}
    assert "tuning" not in wf.without_sections().to_dict()


@pytest.mark.parametrize("space,location,message", [
    ({"trainer.epochz": {"int": [1, 3]}}, 'tuning.space."trainer.epochz"', "unknown parameter (did you mean 'epochs'?)"),
    ({"trainer.optimizer.lr": {"float": [0.1, 0.01]}}, 'tuning.space."trainer.optimizer.lr"', "is reversed: write [0.01, 0.1]"),
    ({"trainer.optimizer.lr": {"float": [0.1, 0.1]}}, 'tuning.space."trainer.optimizer.lr"', "is empty"),
    ({"trainer.optimizer.lr": {"float": [0.0, 0.1], "log": True}}, 'tuning.space."trainer.optimizer.lr"',
     "log = true needs a positive range"),
    ({"models[0].use": {"choice": ["kernel.mlp", "kernel.mpl"]}}, 'tuning.space."models[0].use"',
     "unknown model 'kernel.mpl' (did you mean 'kernel.mlp'"),
    ({"models[0].use": {"choice": []}}, 'tuning.space."models[0].use"', "non-empty list"),
    ({"models[2].hidden": {"int": [1, 3]}}, 'tuning.space."models[2].hidden"', "index 2 is out of range"),
    ({"trainer.epochs": {"int": [1, 3], "float": [1, 2]}}, 'tuning.space."trainer.epochs"', "exactly one of"),
    ({"trainer.epochs": {"int": [1, 3], "stepp": 1}}, 'tuning.space."trainer.epochs"', "unknown key 'stepp'"),
    ({"trainer.epochs": {"int": [1.5, 3]}}, 'tuning.space."trainer.epochs"', "two integers"),
    ({"trainer.epochs": {"int": [1, 3], "when": {"models[0].use": "kernel.mlp"}}}, 'tuning.space."trainer.epochs"',
     "not a parameter written before this one"),
    ({}, "tuning.space", "the search space is empty"),
])
def test_a_bad_space_is_located_at_its_path(space, location, message):
    found = problems(space)
    assert [loc for loc, _ in found] == [location] and message in found[0][1], found


@pytest.mark.parametrize("settings,location,message", [
    ({"trials": 0}, "tuning.trials", "expected 1 or more"),
    ({"trails": 3}, "tuning.trails", "unknown setting (did you mean 'trials'"),
    ({"sampler": "tpee"}, "tuning.sampler", "unknown sampler 'tpee' (did you mean 'tpe'?)"),
    ({"pruner": "medain"}, "tuning.pruner", "(did you mean 'median'?)"),
    ({"direction": "up"}, "tuning.direction", "expected maximize, minimize or auto"),
    ({"direction": "minimize", "monitor": "valid/accuracy"}, "tuning.direction",
     "contradicts the monitor valid/accuracy, which is better high"),
    ({"storage": "not a url"}, "tuning.storage", "is not a database URL"),
    ({"storage": "redis://127.0.0.1/0"}, "tuning.storage", "'redis' is not a database"),
    ({"timeout": -1}, "tuning.timeout", "above 0"),
    ({"model": "resnet"}, "tuning.model", "no model named 'resnet'"),
])
def test_a_bad_setting_is_located(settings, location, message):
    found = problems(None, **settings)
    assert [loc for loc, _ in found] == [location] and message in found[0][1], found


def test_a_table_without_its_required_space_is_a_located_problem():
    with pytest.raises(kernel.WorkflowError, match="tuning.space: required setting is missing"):
        kernel.Workflow(**WORKFLOW, tuning={"trials": 3}).validate_components()


def test_a_table_nobody_owns_and_a_loose_value_are_unknown_settings():
    with pytest.raises(kernel.WorkflowError, match="tunning: unknown setting \\(did you mean 'tuning'"):
        kernel.Workflow(**WORKFLOW, tunning={"space": {}}).validate_components()
    with pytest.raises(kernel.WorkflowError, match="epochs: unknown setting"):
        kernel.Workflow(**WORKFLOW, epochs=3)


def test_several_models_need_the_model_to_tune_named():
    wf = {**WORKFLOW, "models": [{"use": "kernel.mlp"}, {"use": "kernel.linear"}]}
    with pytest.raises(kernel.WorkflowError, match="tuning.model: the workflow lists 2 models"):
        kernel.Workflow(**wf, tuning={"space": {"trainer.epochs": {"int": [1, 3]}}}).validate_components()
    tuned = Tuning(space={"trainer.epochs": {"int": [1, 3]}}, model="linear")
    assert tuned.model_index(kernel.Workflow(**wf)) == 1


class FixedTrial:
    """Answers an Optuna trial's questions from a table (the first choice, the low end)."""

    def __init__(self, values=None):
        self.values, self.asked = values or {}, []

    def suggest_categorical(self, name, choices):
        self.asked.append(name)
        return self.values.get(name, choices[0])

    def suggest_int(self, name, low, high, log=False, step=1):
        self.asked.append(name)
        return self.values.get(name, low)

    def suggest_float(self, name, low, high, log=False, step=None):
        self.asked.append(name)
        return self.values.get(name, low)


def test_a_conditional_parameter_exists_only_for_its_choice():
    params, found = parse_space({
        "models[0].use": {"choice": ["kernel.mlp", "kernel.linear"]},
        "models[0].params.hidden": {"int": [4, 32], "step": 4, "when": {"models[0].use": "kernel.mlp"}}})
    assert found == []
    assert sample(FixedTrial(), params) == {"models[0].use": "kernel.mlp", "models[0].params.hidden": 4}
    trial = FixedTrial({"models[0].use": "kernel.linear"})
    assert sample(trial, params) == {"models[0].use": "kernel.linear"} and trial.asked == ["models[0].use"]
    # the conditional path is checked on a workflow where its condition holds (mlp takes hidden) ...
    space = {"models[0].use": {"choice": ["kernel.mlp", "kernel.linear"]},
             "models[0].params.hidden": {"int": [4, 32], "when": {"models[0].use": "kernel.mlp"}}}
    assert problems(space, workflow={"models": [{"use": "kernel.mlp"}]}) == []
    # ... and a choice the workflow's own parameters do not fit is found before any trial fails on it
    assert problems(space) == [('tuning.space."models[0].use"', "models[0].use = 'kernel.linear': models[0].params."
                                "hidden: unknown parameter; it takes: input_shape, num_classes")]


def test_a_choice_of_transforms_lists_is_offered_to_optuna_as_text_and_comes_back_whole():
    options = [[], [{"use": "vision.Normalize", "mean": [0.5], "std": [0.25]}]]
    params, found = parse_space({"dataset.transforms": {"choice": options}})
    assert found == [] and all(isinstance(label, str) for label in params[0].labels())
    assert [decode(label) for label in params[0].labels()] == options
    assert sample(FixedTrial({"dataset.transforms": params[0].labels()[1]}), params) == {"dataset.transforms": options[1]}


def test_the_grid_sampler_needs_every_value():
    from plugin_tuning.samplers import make_sampler

    params, _ = parse_space({"trainer.epochs": {"int": [1, 5], "step": 2},
                             "trainer.optimizer.lr": {"float": [0.1, 0.3], "step": 0.1}})
    sampler = make_sampler(("grid", {}), params, seed=0)
    assert type(sampler).__name__ == "GridSampler"
    continuous, _ = parse_space({"trainer.optimizer.lr": {"float": [0.1, 0.3]}})
    with pytest.raises(kernel.KernelError, match="the grid sampler needs every value"):
        make_sampler(("grid", {}), continuous, seed=0)


def test_a_sampler_setting_it_does_not_take_is_named():
    from plugin_tuning.samplers import make_pruner, make_sampler

    with pytest.raises(kernel.KernelError, match="tuning.sampler: TPESampler\\(seed = 0, n_startup = 3\\) fails"):
        make_sampler(("tpe", {"n_startup": 3}), [], seed=0)
    assert type(make_pruner(("hyperband", {}), epochs=9)).__name__ == "HyperbandPruner"
