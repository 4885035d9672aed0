"""``kernel.load(run).explain(inputs, method="integrated_gradients")``: attributions in Python."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Explanation:
    """What ``LoadedRun.explain`` returns: ``attributions`` (a tensor, batch first, in the input's
    terms), ``targets`` (the explained classes), ``outputs`` (class scores), ``method``, ``layer``;
    :meth:`pictures` draws each sample's attribution with the renderers ``kernel explain`` uses."""

    attributions: object
    targets: object
    outputs: object
    method: str
    params: dict
    layer: str | None
    _explained: object = None

    def pictures(self) -> list:
        """One ``kernel.Media`` per sample (``.save(path)`` writes it); builds the run's dataset
        once, for its renderer choice."""
        from .explain import render_one

        done = self._explained
        return [render_one(done.loaded.plan, done, i)[1] for i in range(len(done.indices))]


def explain(loaded, inputs, method: str = "integrated_gradients", target="predicted", layer: str | None = None,
            raw: bool = True, labels=None, **params) -> Explanation:
    """Attributions of ``loaded``'s model for ``inputs``: raw inputs (a list, the run's fitted
    transforms applied first) or, with ``raw=False``, one batch as the model takes it. ``target``
    is "predicted", "true" (with ``labels``), a class index, a class name or a tensor of classes;
    ``params`` are the method's (``n_steps=20``)."""
    import kernel

    from .engine import attribute_batch
    from .explain import Explained, build_method

    name, obj, resolved = build_method(kernel.get_catalog(), method, params)
    batch = loaded.preprocess(list(inputs)) if raw else inputs
    result = attribute_batch(loaded.model, batch, obj, target, labels, layer, loaded.facts, loaded.classes, name)
    done = Explained(loaded, name, resolved, result, list(range(result.x.shape[0])), "given", target, labels)
    return Explanation(result.attributions, result.targets, result.outputs, name, resolved, result.layer, done)
