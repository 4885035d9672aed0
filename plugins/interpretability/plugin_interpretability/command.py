"""``kernel explain RUN...``: attributions of trained runs on real samples, checked and drawn
(registered lazily: nothing heavy is imported until the command runs)."""
from __future__ import annotations

import json
import sys


def register(cli):
    p = cli.command("explain", "plugin_interpretability.command:explain_cmd",
                    help="explain trained runs' predictions with attribution methods (Captum)",
                    description="Compute attributions of each run's model on the same samples, check that they "
                                "depend on the model (randomisation sanity check), draw them with the domain's "
                                "renderer and write them under each run's artifacts/explanations/METHOD/. "
                                "docs/interpretability.md has the methods and their parameters.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes), or run folders")
    p.add_argument("--workflow", metavar="NAME", help="every model's newest run of this workflow")
    p.add_argument("--method", action="append", default=[], metavar="NAME",
                   help="an attribution method (repeat for several; `kernel list attributions`); default: "
                        "integrated_gradients, or layer_integrated_gradients for token ids")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a method parameter, e.g. --param n_steps=20 (a TOML value)")
    p.add_argument("--split", default="valid", help="the split the samples come from (default: valid)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--samples", type=int, metavar="N", help="explain N samples spread over the classes (default: 8)")
    which.add_argument("--index", type=int, nargs="+", metavar="I", help="explain these samples of the split")
    p.add_argument("--target", default="predicted", metavar="predicted|true|CLASS",
                   help="the class each sample is explained for: its predicted class (default), its true class, "
                        "or one class by index or name")
    p.add_argument("--layer", metavar="NAME", help="the layer a layer method attributes at (dotted module name); "
                                                   "default: the last convolution with a map of at least 4x4 for Grad-CAM, the embedding for text")
    p.add_argument("--checkpoint", metavar="FILE", help="the checkpoint to load (default: best.pt, else last.pt)")
    p.add_argument("--no-checks", action="store_true",
                   help="skip the randomisation sanity check, infidelity and sensitivity (faster)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def explain_cmd(args):
    import kernel

    from . import explain

    catalog = kernel.get_catalog(tuple(args.disabled))
    if args.samples is not None and args.samples < 1:
        raise kernel.KernelError(f"--samples must be 1 or more, not {args.samples}")
    params = kernel.parse_params(args.param)
    if params and len(args.method) != 1:
        raise kernel.KernelError("--param sets one method's parameters; give exactly one --method with it")
    # names and parameters first: a typo is reported before any model or data is loaded
    methods = [explain.build_method(catalog, m, params)[0] for m in args.method]
    loaded = [kernel.load(ref, checkpoint=args.checkpoint) for ref in run_refs(args)]
    fingerprints = {str(r.info.get("fingerprint")) for r in loaded}
    if len(fingerprints) > 1:
        raise kernel.KernelError("these runs were trained on different datasets, so they cannot be explained on the "
                                 "same samples; explain them one command each")
    first = loaded[0]
    dataset = explain.split_of(first, args.split)
    indices = args.index or kernel.sample_indices(first.plan, args.split, args.samples or explain.DEFAULT_SAMPLES)
    methods = methods or [default_method(first, dataset, indices)]
    target = args.target
    done = []  # every run and method computed before anything is written: a mistake writes nothing
    for method in methods:
        for run in loaded:
            if not args.json:
                print(f"explaining {run.run.id} with {explain.method_name(catalog, method)} ...", file=sys.stderr)
            done.append(explain.explain_run(run, catalog, method, params, args.split, indices, target,
                                            args.layer, run_checks=not args.no_checks))
    tables = {method: explain.agreement([d for d in done if d.method == method])
              for method in dict.fromkeys(d.method for d in done)} if len(loaded) > 1 else {}
    folders = [explain.write(d) for d in done]
    if args.json:
        print(json.dumps([{**explain.record(d), "folder": str(f)} for d, f in zip(done, folders)], indent=2))
        return 0
    report(done, folders, tables)
    return 0


def run_refs(args) -> list:
    import kernel

    refs = list(args.runs)
    if args.workflow:
        refs += [rid for rid in kernel.newest_runs(args.workflow) if rid not in refs]
    if not refs:
        raise kernel.KernelError("name the runs to explain (`kernel runs` lists them), or --workflow NAME")
    return refs


def default_method(loaded, dataset, indices) -> str:
    """Integrated gradients for inputs that have gradients; at the embedding for token ids."""
    from .explain import DEFAULT_METHODS, batch_of
    from .model_inputs import Forward

    inputs, _ = batch_of(loaded, dataset, indices[:1])
    x, _ = Forward(loaded.model, inputs).split(inputs)
    return DEFAULT_METHODS[bool(x.dtype.is_floating_point)]


def report(done, folders, tables):
    for d, folder in zip(done, folders):
        line = f"{d.loaded.run.id} ({d.loaded.info.get('model')}): {d.method} on {len(d.indices)} {d.split} samples"
        if d.result.layer:
            line += f" at layer {d.result.layer}"
        print(line)
        if d.sanity:
            rho = d.sanity["rank_correlation"]
            verdict = "n/a" if d.sanity["passed"] is None else ("passed" if d.sanity["passed"] else
                                                                "FAILED: the attributions hardly depend on the model")
            print(f"  sanity check: rank correlation {rho if rho is not None else 'n/a'} with a randomised model "
                  f"(below {d.sanity['threshold']} passes): {verdict}")
        known = [v for v in d.infidelity if v is not None]
        if known:
            sens = [v for v in d.sensitivity if v is not None]
            print(f"  infidelity {sum(known) / len(known):.4g}, max-sensitivity "
                  f"{sum(sens) / len(sens):.4g} (mean over samples; lower is better)")
        print(f"  written: {folder}")
    for method, rows in tables.items():
        names = [str(d.loaded.info.get("model")) for d in done if d.method == method]
        print(f"how alike the models' {method} attributions are (mean rank correlation, same samples):")
        width = max(len(n) for n in names)
        print(" " * (width + 2) + "  ".join(n.rjust(width) for n in names))
        for name, row in zip(names, rows):
            print(name.ljust(width + 2) + "  ".join(("-" if v is None else f"{v:.3f}").rjust(width) for v in row))
