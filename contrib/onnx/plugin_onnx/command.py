"""``kernel export RUN...`` and ``kernel predict MODEL.onnx INPUT...`` (registered lazily: argparse
only; ``kernel predict`` never imports torch)."""
from __future__ import annotations

import json
import sys

from kernel import KernelError


class Refused(KernelError):
    """An export whose verification failed: exit status 1 (a bad command line is 2)."""

    exit_code = 1


def register(cli):
    p = cli.command("export", "plugin_onnx.command:export_cmd",
                    help="export trained runs to ONNX, TorchScript or torch.export, verified against the eager model",
                    description="Load each run's best checkpoint, export its model with an example batch of real "
                                "samples, and verify the file on validation samples: it takes its name only if its "
                                "scores agree with the eager model's within the tolerance; otherwise it is kept as "
                                "NAME.unverified and the command exits 1. The outcome is recorded in the run "
                                "(kernel runs, the report). docs/export.md has the formats and the file metadata.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes), or run folders")
    p.add_argument("--workflow", metavar="NAME", help="every model's newest run of this workflow")
    p.add_argument("--format", action="append", default=[], metavar="NAME",
                   help="onnx (default), torchscript, exported_program, or any exporter's name (`kernel list "
                        "exporters`); repeat for several")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="the file to write (one run, one format) or a folder; default: the run's artifacts/exports/")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="an exporter parameter, e.g. --param opset=17 (a TOML value; `kernel show onnx.onnx`)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance of the verification (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-3,
                   help="tolerance relative to the largest eager score (default 1e-3)")
    p.add_argument("--samples", type=int, default=64, metavar="N",
                   help="validation samples the verification runs on (default 64)")
    p.add_argument("--split", default="valid", help="the split those samples come from (default: valid)")
    p.add_argument("--in-graph", action="store_true",
                   help="put the fitted normalisation into the graph: callers feed unnormalised inputs")
    p.add_argument("--quantize", choices=("dynamic", "static"),
                   help="also write an int8 ONNX file (onnxruntime.quantization), with its accuracy against the "
                        "float model's on the split: static for convolutional models, dynamic (matrix products "
                        "only) for text and other linear-heavy ones")
    p.add_argument("--min-agreement", type=float, default=0.95, metavar="FRACTION",
                   help="a quantised file must agree with the float one on this share of top-1 classes (default 0.95)")
    p.add_argument("--checkpoint", metavar="FILE", help="the checkpoint to load (default: best.pt, else last.pt)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")

    q = cli.command("predict", "plugin_onnx.command:predict_cmd",
                    help="classify image files, text lines or audio files with an exported ONNX file (no torch)",
                    description="Read each input as the file's metadata says (image, text, audio, or .npy for "
                                "other inputs), preprocess it with numpy and Pillow as the run did, run it with "
                                "onnxruntime and print the top classes with their probabilities. Imports no torch.")
    q.add_argument("model", metavar="MODEL.onnx", help="an ONNX file written by kernel export")
    q.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="files to classify; for a text model, lines of text (or @FILE: one text per line; - reads "
                        "stdin)")
    q.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per input (default 3)")
    q.add_argument("--json", action="store_true", help="print the predictions (and timings) as JSON")


def export_cmd(args):
    import kernel

    from .export import Tolerance, export_run, refusal

    if args.samples < 1:
        raise KernelError(f"--samples must be 1 or more, not {args.samples}")
    for name in ("atol", "rtol"):
        if getattr(args, name) < 0:
            raise KernelError(f"--{name} must be 0 or more, not {getattr(args, name)}")
    if not 0 <= args.min_agreement <= 1:
        raise KernelError(f"--min-agreement is a fraction between 0 and 1, not {args.min_agreement}")
    catalog = kernel.get_catalog(tuple(args.disabled))
    formats = args.format or ["onnx"]
    params = kernel.parse_params(args.param)
    if params and len(formats) != 1:
        raise KernelError("--param sets one exporter's parameters; give exactly one --format with it")
    from .export import resolve

    exporters = [resolve(catalog, fmt, params)[1] for fmt in formats]  # typos first: no model is loaded for them
    if args.quantize and not any(getattr(e, "format", None) == "onnx" for e in exporters):
        raise KernelError("--quantize writes an int8 ONNX file next to the float one: add --format onnx")
    refs = list(args.runs)
    if args.workflow:
        refs += [rid for rid in kernel.newest_runs(args.workflow) if rid not in refs]
    if not refs:
        raise KernelError("name the runs to export (`kernel runs` lists them), or --workflow NAME")
    from .export import is_folder

    if args.output and len(refs) * len(formats) > 1 and not is_folder(args.output):
        raise KernelError(f"-o {args.output}: several files are exported; give a folder (ending in /)")
    loaded = [kernel.load(ref, checkpoint=args.checkpoint) for ref in refs]
    tolerance = Tolerance(args.atol, args.rtol, args.min_agreement)
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    done, failed = [], []
    for run in loaded:
        for fmt in formats:  # one export that fails does not stop the others
            say(f"exporting {run.run.id} ({run.info.get('model')}) to {fmt} ...")
            try:
                done += export_run(run, catalog, fmt, params, args.output, args.split, args.samples, tolerance,
                                   args.in_graph, args.quantize, say)
            except KernelError as exc:
                failed.append(f"{run.run.id} to {fmt}: {exc}")
                if len(loaded) * len(formats) > 1:
                    print(f"kernel: error: {failed[-1]}", file=sys.stderr)
    if args.json:
        print(json.dumps([{"run": d.run, **d.record()} for d in done], indent=2, default=str))
    else:
        for d in done:
            quantized = f" int8 ({d.details['quantized']})" if d.details.get("quantized") else ""
            print(f"{d.run}: {d.format}{quantized} -> {d.path}")
            if d.verification:
                print(f"  {d.verification.line()}")
            if "accuracy" in d.details:
                print(f"  accuracy on {d.details['accuracy_samples']} {args.split} samples: int8 "
                      f"{d.details['accuracy']:.2%}, float {d.details['float_accuracy']:.2%} "
                      f"({100 * (d.details['accuracy'] - d.details['float_accuracy']):+.2f} points)")
    if failed:  # an export that could not be made is the user's to fix (2); a refused file is a failed check (1)
        raise KernelError(f"{len(failed)} of {len(loaded) * len(formats)} export(s) failed (above)" if len(failed) > 1
                          else failed[0].split(": ", 1)[1])
    refused = [refusal(d) for d in done if not d.passed]
    if refused:
        raise Refused("; ".join(refused))
    return 0


def predict_cmd(args):
    from .predict import main

    return main(args)
