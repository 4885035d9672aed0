"""Run-scoped event dispatch through pluggy: each callback is registered as a plugin of one run.

A callback is any object with ``on_<event>(run, state)`` methods; no marker is needed. Ignite-style
filters limit how often a method is called: a callback's ``filters`` attribute maps an event to
``{"every": N}`` (every N-th batch for ``batch_end``, every N-th epoch for epoch events) or
``{"once": N}`` (only at the N-th). ``EventBus.on(event, fn, every=..., once=...)`` adds a plain
function the same way. Events no callback listens to cost nothing, and :meth:`EventBus.period` lets
the loop skip the batches at which no filter lets a call through.
"""
from __future__ import annotations

import math

import pluggy

EVENTS = ("fit_start", "epoch_start", "batch_end", "validation_end", "epoch_end", "fit_end", "exception")

_spec = pluggy.HookspecMarker("kernel_events")


class _Specs:
    @_spec
    def on_fit_start(self, run, state): ...

    @_spec
    def on_epoch_start(self, run, state): ...

    @_spec
    def on_batch_end(self, run, state): ...

    @_spec
    def on_validation_end(self, run, state): ...

    @_spec
    def on_epoch_end(self, run, state): ...

    @_spec
    def on_fit_end(self, run, state): ...

    @_spec
    def on_exception(self, run, state): ...


class _Manager(pluggy.PluginManager):
    def parse_hookimpl_opts(self, plugin, name):
        # any on_<event> method is an implementation: callbacks need not import pluggy's marker
        if name.startswith("on_") and name[3:] in EVENTS and callable(getattr(plugin, name, None)):
            return {}
        return None


def _counter(event: str, state) -> int:
    return state.step if event == "batch_end" else state.epoch


class _Filtered:
    """A callback seen through its filters: the same methods, called only when the filter says so."""

    def __init__(self, callback, filters: dict):
        self.periods = {}  # event: the counts at which a call may happen are multiples of this
        for event in EVENTS:
            method = getattr(callback, "on_" + event, None)
            if method is None:
                continue
            rule = filters.get(event)
            if rule:
                method, self.periods[event] = _wrap(method, event, rule.get("every"), rule.get("once"))
            setattr(self, "on_" + event, method)


def _wrap(method, event, every=None, once=None):
    """``method`` called only at the counts the filter allows, and the period those counts are
    multiples of (``once``'s count itself; 0 for a ``once`` that can never come, which no period needs)."""
    if once is not None:
        def call(run, state):
            if _counter(event, state) == once:
                method(run, state)
        return call, max(0, int(once))
    every = max(1, int(every or 1))

    def call(run, state):
        if _counter(event, state) % every == 0:
            method(run, state)
    return call, every


class EventBus:
    """The callbacks of one run, called in list order for each event."""

    def __init__(self, callbacks=()):
        self.callbacks = list(callbacks)
        self.manager = _Manager("kernel_events")
        self.manager.add_hookspecs(_Specs)
        # pluggy calls the last registered first: register in reverse to keep the list order
        for cb in reversed(self.callbacks):
            self._register(cb)

    def _register(self, callback):
        filters = getattr(callback, "filters", None) or {}
        self.manager.register(_Filtered(callback, filters) if filters else callback)

    def on(self, event: str, fn, every: int | None = None, once: int | None = None):
        """Call ``fn(run, state)`` on ``event``, optionally every N-th time or once at the N-th."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events are {', '.join(EVENTS)}")
        holder = type("Handler", (), {})()
        setattr(holder, "on_" + event, fn)
        holder.filters = {event: {"every": every, "once": once}} if (every or once) else {}
        self._register(holder)

    def period(self, event: str) -> int:
        """0 when no callback listens to ``event``; else P such that every call its listeners' filters
        let through falls on a count (``state.step`` for ``batch_end``) that is a multiple of P: the
        greatest common divisor of their ``every``/``once`` values, 1 for a listener without a
        filter. Firing only at those counts calls every listener exactly when firing each time would."""
        period = 0
        for impl in getattr(self.manager.hook, "on_" + event).get_hookimpls():
            periods = impl.plugin.periods if isinstance(impl.plugin, _Filtered) else {}
            period = math.gcd(period, periods.get(event, 1))
        return period

    def fire(self, event: str, run, state):
        getattr(self.manager.hook, "on_" + event)(run=run, state=state)
