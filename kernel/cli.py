"""The ``kernel`` command line. Commands come from plugins through ``kernel_commands(cli)``, the
kernel's own included; a command's code is imported only when that command runs.

A ``KernelError`` (a user's mistake) prints one line and exits 2; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from .component import KINDS
from .errors import KernelError, debugging, did_you_mean


class CLI:
    """What ``kernel_commands(cli)`` receives: a way to add sub-commands without importing them."""

    def __init__(self, subparsers):
        self._subparsers = subparsers
        self.targets: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.parsers: dict[str, argparse.ArgumentParser] = {}
        self.fields: dict[str, tuple[str, str]] = {}  # run.json field -> (plugin, help)
        self.plugin = ""
        self.kinds: tuple[str, ...] = KINDS  # every kind of component, the plugins' own too (for help texts)

    def command(self, name: str, target: str, help: str = "", description: str | None = None):
        """Add ``kernel NAME``; returns its argparse parser for the plugin to add arguments to."""
        if name in self.targets:
            raise ValueError(f"command {name!r} is already defined by plugin {self.owners[name]!r}")
        parser = self._subparsers.add_parser(name, help=help, description=description or help,
                                             formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(_command=name)
        self.targets[name] = target
        self.owners[name] = self.plugin
        self.parsers[name] = parser
        return parser

    def run_field(self, name: str, help: str = ""):
        """Add ``--NAME VALUE`` to the commands that pick runs: only runs whose run.json holds
        that value under ``name`` (``kernel runs --study lr-search``)."""
        if not name.isidentifier():
            raise ValueError(f"run field {name!r} must be a plain name (letters, digits, _)")
        if name in self.fields:
            raise ValueError(f"run field {name!r} is already added by plugin {self.fields[name][0]!r}")
        self.fields[name] = (self.plugin, help)

    def add_run_fields(self):
        """Once every plugin has added its commands: the fields' options on the run-picking commands."""
        for command in RUN_PICKERS:
            parser = self.parsers.get(command)
            if parser is None:
                continue
            for name, (plugin, help) in self.fields.items():
                try:
                    parser.add_argument(f"--{name.replace('_', '-')}", dest=f"field_{name}", metavar="VALUE",
                                        help=help or f"only runs whose run.json has this {name} (plugin {plugin})")
                except argparse.ArgumentError:
                    pass  # the command has such an option of its own: it wins


#: the commands that pick runs, to which ``cli.run_field`` adds options
RUN_PICKERS = ("runs", "compare", "report")


def run_fields(args) -> dict:
    """The ``--NAME VALUE`` run-field options given on this command line: ``{"study": "lr"}``."""
    return {key[len("field_"):]: value for key, value in vars(args).items()
            if key.startswith("field_") and value is not None}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors are user mistakes too: exit 2, no traceback
        if "invalid choice" in message and getattr(self, "_commands", None):
            wrong = message.split("invalid choice: ")[1].split("'")[1] if "'" in message else ""
            choices = getattr(self, "_commands", [])
            message = f"unknown command {wrong!r}{did_you_mean(wrong, choices)}; see `kernel --help`"
        self.print_usage(sys.stderr)
        print(f"kernel: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _pre_scan(argv: list[str]) -> tuple[list[str], bool]:
    """``-p no:NAME`` and ``--debug`` are read before plugins load, since they change what loads."""
    disabled, debug, i = [], "--debug" in argv, 0
    while i < len(argv):
        if argv[i] == "-p" and i + 1 < len(argv) and argv[i + 1].startswith("no:"):
            disabled.append(argv[i + 1][3:])
            i += 2
            continue
        if argv[i].startswith("-p=no:") or argv[i].startswith("-pno:"):
            disabled.append(argv[i].split("no:", 1)[1])
        i += 1
    return disabled, debug


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    disabled, debug = _pre_scan(argv)
    debug = debug or debugging()
    if debug:  # worker processes and the runner read it too: a failed run shows its traceback
        os.environ["KERNEL_DEBUG"] = "1"
    before = os.environ.get("KERNEL_DISABLE_PLUGINS")
    if disabled:  # as the environment says it: --parallel workers and kernel.fused (the operator library) read it
        from .plugins import disabled_names

        os.environ["KERNEL_DISABLE_PLUGINS"] = ",".join(sorted(disabled_names(disabled)))
    try:
        return _main(argv, disabled, debug)
    finally:
        if debug:
            show_plugin_tracebacks()
        if disabled:  # a caller in this process keeps its own setting
            if before is None:
                os.environ.pop("KERNEL_DISABLE_PLUGINS", None)
            else:
                os.environ["KERNEL_DISABLE_PLUGINS"] = before


def _main(argv: list[str], disabled: list[str], debug: bool) -> int:
    try:
        parser, cli, plugins = build_parser(disabled)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        args.disabled = tuple(disabled)
        args.argv = argv  # what a launcher of several processes gives each of them (kernel/launch.py)
        from .catalog import import_target

        fn = import_target(cli.targets[args.command], f"command {args.command}")
        code = fn(args)
        return int(code or 0)
    except KernelError as exc:
        if debug:
            traceback.print_exc()
        if not _follower():
            print(f"kernel: error: {exc}", file=sys.stderr)
        else:  # one of several processes: rank 0 says it, and the launcher says what only this one met
            from .launch import record_error

            record_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        if not _follower():  # one of several processes: rank 0 says it
            print("kernel: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _follower() -> bool:
    """A process other than rank 0 of a job torchrun's agent started: rank 0 speaks for the job."""
    return bool(os.environ.get("TORCHELASTIC_RUN_ID")) and os.environ.get("RANK", "0") != "0"


_LOADED: list = []  # the plugin sets this process loaded: the parser's, then the catalogs'


def show_plugin_tracebacks():
    """With --debug: the traceback of every plugin found broken in this process, on stderr."""
    from .catalog import _CATALOG

    shown = set()
    for plugins in _LOADED + [c.plugins for c in _CATALOG.values()]:
        for info in plugins.infos.values():
            if info.status == "broken" and info.details and info.name not in shown:
                shown.add(info.name)
                print(f"kernel: plugin {info.name!r} ({info.distribution}) is broken: {info.error}\n"
                      f"{info.details.rstrip()}", file=sys.stderr)


def build_parser(disabled):
    """The parser with every plugin's commands; a plugin whose hook raises is marked broken."""
    from .plugins import load_plugins

    parser = _Parser(prog="kernel", description="Compose, train and compare PyTorch workflows from plugins.",
                     epilog="Run `kernel COMMAND --help` for a command's options.")
    parser.add_argument("-p", dest="plugin_flags", action="append", default=[], metavar="no:NAME",
                        help="disable a plugin for this call (also KERNEL_DISABLE_PLUGINS=a,b)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    cli = CLI(sub)
    plugins = load_plugins(disabled)
    cli.kinds = plugins.kinds
    caller = plugins.manager.hook.kernel_commands
    for impl in caller.get_hookimpls():
        if plugins.infos.get(impl.plugin_name) and plugins.infos[impl.plugin_name].status != "loaded":
            continue
        cli.plugin = impl.plugin_name
        try:
            impl.function(cli=cli)
        except Exception as exc:
            plugins.mark_broken(impl.plugin_name, f"hook kernel_commands raised {type(exc).__name__}: {exc}",
                                traceback.format_exc())
    cli.add_run_fields()
    parser._commands = list(cli.targets)
    _LOADED.append(plugins)
    return parser, cli, plugins


if __name__ == "__main__":
    sys.exit(main())
