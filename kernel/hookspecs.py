"""The hooks a plugin may implement: one documented function each.

A plugin is a module (or object) named by an entry point in the group ``kernel``; its functions
marked with :data:`kernel.hookimpl` and named as below are called by the kernel. Every component
hook takes no argument and returns a list of :class:`kernel.Component`. Listing happens without
building anything, so a hook must return quickly and must not import heavy libraries: targets are
dotted strings, imported when a component is built.

``docs/hooks.md`` is checked against this file by the test suite.
"""
from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("kernel")


@hookspec
def kernel_datasets():
    """Return the datasets the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns a map-style ``torch.utils.data.Dataset`` whose items are
    ``(input, target)`` pairs (the kernel splits it), or a dict of splits
    ``{"train": ds, "valid": ds, "test": ds}``. Optional attributes on a dataset: ``classes``
    (list of class names), ``targets`` (all labels, so the kernel need not load every sample to
    count classes), ``collate_fn`` (for variable-length samples), and any *data fact* a model may
    need by name (``sample_rate``, ...). A dataset that needs files says, when they are missing,
    which files and where to put them (raise ``kernel.KernelError``).
    """


@hookspec
def kernel_transforms():
    """Return the transforms the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns a callable applied to a sample's input. A transform whose
    ``joint`` attribute is true is called with ``(input, target)`` and returns both (detection
    boxes, segmentation masks). A transform that must learn from data exposes ``fit(dataset)``; the
    kernel calls it on the training split only (items already passed through the transforms before
    it) and saves ``state_dict()`` with the run, restoring it with ``load_state_dict(state)``.
    A transform may offer ``facts() -> dict`` (a vocabulary offers ``vocab_size`` and
    ``padding_idx``; a normalisation offers ``normalize = {"mean": ..., "std": ...}``) and
    ``collate_fn`` (padding variable-length inputs into a batch).
    """


@hookspec
def kernel_models():
    """Return the models the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an ``nn.Module``. Parameters the user left unset are filled from
    the *data facts* when the signature asks for them by name: ``num_classes``, ``in_channels``,
    ``input_shape``, ``vocab_size``, ``padding_idx``, ``sample_rate``, ``classes``, and any
    attribute of the dataset or fact of a fitted transform with the parameter's name.
    """


@hookspec
def kernel_renderers():
    """Return the renderers the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``score(meta) -> float`` and
    ``render(tensor, context)`` returning a PIL image, HTML text or a ``kernel.Media`` (audio, say).
    ``meta`` is a dict describing one tensor of a
    sample: ``shape`` (tuple, no batch dimension), ``dtype`` (str), ``role`` ("input", "target",
    "prediction" or "attribution"), ``tags`` (the dataset's tags) and ``classes``. ``context`` is a
    dict with the other tensors of the sample (``input``, ``target``, ``prediction``), the data
    ``facts`` and ``normalize`` when a normalisation is known. An attribution (how much each part of
    the input counted for the model's output) also has ``input_shape`` and ``input_dtype`` in
    ``meta`` (the sample's model input), and ``attribution``, ``explained`` (the class index it
    explains), ``method`` (the attribution method's name) and ``layer`` (None, or the layer's dotted
    name) in ``context``; a renderer not meant for attributions scores them 0. For each tensor the
    kernel picks the renderer with the highest score across all plugins, ties broken by a fixed rule
    (kernel.rendering); 0 means "cannot render this".
    """


@hookspec
def kernel_analyzers():
    """Return the analyzers the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``start(info)``, ``update(batch)`` and
    ``finish() -> kernel.Report``. ``info`` is a dict: ``splits`` (name -> size), ``classes``,
    ``facts``, ``tags``, ``transforms`` (the workflow's transform specs). ``update`` receives
    ``{"split": name, "inputs": [...], "targets": [...]}`` with one tensor per sample (not
    stacked, so sizes may differ), for every split in turn. An analyzer whose ``raw``
    attribute is true sees the samples before the workflow's transforms. Analyzers stream:
    they never hold the dataset.
    """


@hookspec
def kernel_metrics():
    """Return the metrics the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``update(preds, target)``, ``compute()`` and
    ``reset()`` (torchmetrics metrics qualify as they are). Parameters such as ``num_classes``
    are filled from the data facts like a model's.
    """


@hookspec
def kernel_trainers():
    """Return the trainers the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``fit(model, data, run) -> kernel.Result``:
    ``data`` is a ``kernel.Data`` (splits, collate function, facts), ``run`` a ``kernel.Run``
    (its directory, status, metric log, checkpoints and the callbacks' event dispatch). Optional:
    ``describe(data) -> dict`` (the resolved settings) and ``check(model, data, defaults)`` (raise
    ``kernel.KernelError`` for a setting that cannot work, before any run exists). The trainer
    records how the run ended with ``run.set_status`` and returns a Result with that status; the
    whole contract is in docs/hooks.md.
    """


@hookspec
def kernel_exporters():
    """Return the exporters the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``export(model, example, path) -> kernel.Artifact``
    where ``example`` is one batch of inputs and ``path`` the file to write. ``export`` may also take
    ``metadata=`` (a JSON-ready dict for the file to carry), and the object may offer ``load(path)``:
    a callable from ``{input name: numpy array}`` to the scores, so that ``kernel export`` can verify
    the file (docs/export.md).
    """


@hookspec
def kernel_callbacks():
    """Return the callbacks the plugin offers, as a list of ``Component``.

    ``target(**params)`` returns an object with ``on_<event>(run, state)`` methods for the
    trainer's events: ``fit_start``, ``epoch_start``, ``batch_end``, ``validation_end``,
    ``epoch_end``, ``fit_end``, ``exception``. Callbacks are registered as run-scoped plugins, so
    the events are dispatched through pluggy. A callback may offer ``state_dict()`` and
    ``load_state_dict(state)`` to be saved in checkpoints.
    """


@hookspec
def kernel_sections():
    """Return the workflow tables the plugin owns, as a list of ``Component`` (at most one, named
    after the plugin or a command it adds: plugin ``tuning`` owns ``[tuning]``, plugin ``onnx``,
    which adds ``kernel export``, owns ``[export]``).

    ``target(**table)`` receives the table's keys as parameters, so its signature and docstring are
    the table's reference (``kernel show tuning``) and unknown keys or wrong types are located like
    any component's (``tuning.trails: unknown parameter; did you mean trials?``). The object it
    returns may offer ``check(workflow) -> list[tuple[str, str]]``: problems as ``(location,
    message)``, located as the user writes them (``tuning.space."models[0].use"``), and
    ``finish(results)``: called once the workflow's runs have ended (``kernel run``,
    ``Workflow.run``; not for runs that skip artifacts, such as a study's trials), to act on them; an
    exception it raises is reported and makes ``kernel run`` exit 1, the runs stay as they are. A
    workflow table no installed plugin owns is an unknown setting; the kernel itself trains the
    workflow as written.
    """


@hookspec
def kernel_kinds():
    """Return the kinds of component the plugin declares, as a list of ``kernel.Kind``.

    ``Kind("attribution", doc="...", check="module:function")`` adds the hook
    ``kernel_attributions()`` (the name and ``s``), which any plugin implements like
    ``kernel_models()``: it takes no argument and returns a list of ``Component``. ``doc`` is that
    hook's documentation. The catalog, ``kernel list``, ``kernel show`` and ``kernel check-plugin``
    treat the kind like the built-in ones; ``check(obj) -> list[str]`` (optional) returns the
    problems of an object a component of the kind built. A name that is a built-in kind, another
    plugin's kind or a hook of the kernel marks the declaring plugin broken; an implementation of the
    new hook that takes arguments marks its own plugin broken. A kind whose plugin is disabled or
    broken does not exist.
    """


@hookspec
def kernel_methods():
    """Return methods the plugin adds to the kernel's Python objects, as a dict
    ``{"Workflow.tune": "module:function", "LoadedRun.explain": "module:function"}``.

    ``workflow.tune(**options)`` then imports the target on first use and calls it as
    ``function(workflow, **options)``; ``kernel.load(run).explain(**options)`` calls
    ``function(loaded_run, **options)``. Only ``Workflow`` and ``LoadedRun`` take methods; a name the
    class has already (a method, a field, an attribute), or that two plugins claim, is refused (the
    second plugin is reported broken).
    """


@hookspec
def kernel_report_sections(runs, workspace):
    """Return sections for the HTML report and the dashboard, as a list of ``kernel.Section``.

    ``runs`` are the run.json dicts the page shows, ``workspace`` the run store's folder (a
    ``pathlib.Path``). Called each time a page is built, so it reads files and returns quickly; a
    plugin that has nothing for these runs returns an empty list. ``Section(title, html)``: ``html``
    is a fragment placed in the page as it is, and must work offline (no CDN: inline any script it
    needs). A hook that raises is reported on the page as a warning, and the rest is shown.
    """


@hookspec
def kernel_commands(cli):
    """Add sub-commands to the ``kernel`` command line. Returns nothing.

    ``cli.command(name, target="module:function", help="...")`` returns an ``argparse`` parser to
    which the plugin adds its arguments; ``target`` is imported only when the command runs, and is
    called with the parsed ``argparse.Namespace``. Its return value is the exit code (``None`` is 0).
    ``cli.run_field(name, help="...")`` adds ``--NAME VALUE`` to the commands that list runs
    (``kernel runs``, ``compare``, ``report``): it keeps the runs whose run.json has
    that value under ``name`` (``kernel runs --study lr-search``).
    """
