"""`pyruntime compress MODEL -o OUT.pyrt ...`: rt.compress from the command line, by
flags (--prune, --quantize, --finetune), a TOML recipe, or --auto within an accuracy
budget; prints the report (Markdown) unless --quiet."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .common import int_at_least, number


def _fraction(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}")
    return v


def _block(s: str) -> tuple[int, int]:
    parts = s.split(",")
    try:
        r, c = (int(p) for p in parts)
    except ValueError:
        r = c = 0
    if len(parts) != 2 or r < 1 or c < 1:
        raise argparse.ArgumentTypeError(f"expected two integers >= 1 as R,C (e.g. 16,1), "
                                         f"got {s!r}")
    return r, c


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compress", parents=parents, help="prune, fine-tune, quantize a model; or --auto",
        description="Compress a model with rt.compress and write the result. Steps run in "
                    "the order distill, prune, fine-tune, quantize; --recipe reads them from "
                    "a TOML file instead; --auto searches per layer (int8, fp16, bf16, "
                    "sparsity levels, dense), timing each candidate on this machine, for the "
                    "fastest model within --max-drop of the original's accuracy on --data. "
                    "Data files are .npz: --calibration holds arrays named by the model's "
                    "inputs (or one array for a one-input model); --finetune and --data hold "
                    "x and y.")
    p.add_argument("model", metavar="MODEL", help="an ONNX or .pyrt model file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the compressed model (.pyrt; .onnx writes ONNX)")
    p.add_argument("--prune", type=_fraction, metavar="S",
                   help="prune Conv/Gemm kernels to this sparsity, one shot (e.g. 0.9)")
    p.add_argument("--block", type=_block, metavar="R,C",
                   help="prune blocks of R output channels x C inputs (default unstructured)")
    p.add_argument("--quantize", choices=("int8", "fp16", "bf16"),
                   help="quantize the kernels last (int8 is static with --calibration)")
    p.add_argument("--calibration", metavar="DATA.npz",
                   help="inputs for static int8 (default: --finetune's x, else --data's x)")
    p.add_argument("--finetune", metavar="DATA.npz",
                   help="fine-tune on x, y after pruning (pruned zeros stay zero)")
    p.add_argument("--epochs", type=int_at_least(1), metavar="N",
                   help="fine-tuning epochs (default: the recipe default, 10)")
    p.add_argument("--recipe", metavar="RECIPE.toml",
                   help="steps from a TOML file ([[step]] tables with kind = ...)")
    p.add_argument("--data", metavar="VAL.npz",
                   help="validation x, y: the report's accuracy; needed by --auto")
    p.add_argument("--auto", action="store_true",
                   help="search for the fastest model within --max-drop on --data")
    p.add_argument("--max-drop", type=_fraction, default=None, metavar="F",
                   help="--auto: top-1 accuracy the model may lose, a fraction (default 0.01)")
    p.add_argument("--time-budget", type=number(0.0, True), default=300.0, metavar="SEC",
                   help="--auto: bound on the search time in seconds (default 300)")
    p.add_argument("--batch", type=int_at_least(1), default=1, metavar="N",
                   help="--auto: the batch size to make fastest (default 1)")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="Session threads for timing and evaluation (default: every core)")
    p.add_argument("--no-latency", action="store_true",
                   help="skip timing the stages in the report")
    p.add_argument("--report", metavar="FILE",
                   help="also write the report to FILE (.json: JSON, else Markdown)")
    p.set_defaults(run=run, _parser=p)


def load_npz(path: str, what: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file; a missing or corrupt file is an rt.InputError naming it."""
    from ..errors import InputError
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file {path!r} does not exist")
    if not zipfile.is_zipfile(p):
        raise InputError(f"{what} file {path!r} is not an .npz file (not a zip archive)")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{what} file {path!r} is not a readable .npz file "
                         f"({type(e).__name__}: {e})") from None


def _xy(path: str, what: str, need_y: bool) -> Any:
    from ..errors import InputError
    z = load_npz(path, what)
    if "x" not in z or (need_y and "y" not in z):
        raise InputError(f"{what} file {path!r}: expected arrays named x and y, got "
                         f"{sorted(z)}")
    return (z["x"], z["y"]) if "y" in z else z["x"]


def _calibration(path: str, graph: Any) -> Any:
    from ..errors import InputError
    z = load_npz(path, "--calibration")
    names = [vi.name for vi in graph.inputs]
    if all(n in z for n in names):
        return {n: z[n] for n in names}
    if len(names) == 1 and len(z) == 1:
        return next(iter(z.values()))
    raise InputError(f"--calibration file {path!r}: expected arrays named {names} (or one "
                     f"array for a one-input model), got {sorted(z)}")


def _recipe_from_flags(args: argparse.Namespace) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    if args.prune is not None:
        steps.append({"prune": {"sparsity": args.prune,
                                **({"block": list(args.block)} if args.block else {})}})
    if args.finetune:
        steps.append({"finetune": {"epochs": args.epochs} if args.epochs else {}})
    if args.quantize:
        steps.append({"quantize": {"dtype": args.quantize}})
    return steps


def _usage(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express: exit 2 like any usage error."""
    err = args._parser.error
    if args.block and args.prune is None:
        err("--block needs --prune")
    if args.epochs and not args.finetune:
        err("--epochs needs --finetune DATA.npz")
    if args.auto:
        if not args.data:
            err("--auto needs --data VAL.npz (x and y)")
        if args.recipe or args.prune is not None or args.quantize or args.finetune:
            err("--auto chooses the steps itself: drop --recipe/--prune/--quantize/--finetune")
    elif args.max_drop is not None:
        err("--max-drop is for --auto")
    if args.calibration and not (args.recipe or args.auto) and args.quantize != "int8":
        err("--calibration fixes static int8 activation ranges: it needs --quantize int8"
            + (f", not {args.quantize}" if args.quantize else ""))
    if args.recipe and (args.prune is not None or args.quantize or args.epochs):
        err("--recipe gives the steps: drop --prune/--quantize/--epochs")
    if not (args.auto or args.recipe or args.prune is not None or args.quantize
            or args.finetune):
        err("nothing to do: give --prune, --quantize, --finetune, --recipe or --auto")


def run(args: argparse.Namespace) -> int:
    _usage(args)
    from ..compression import compress
    from ..compression.recipe import load_recipe
    from ..serve.models import find_models, load_graph
    path = next(iter(find_models([args.model]).values()))   # ModelFormatError -> exit 1
    graph = load_graph(path)
    recipe = load_recipe(args.recipe) if args.recipe else \
        (None if args.auto else _recipe_from_flags(args))
    data = _xy(args.data, "--data", need_y=args.auto) if args.data else None
    train = _xy(args.finetune, "--finetune", need_y=True) if args.finetune else None
    cal = _calibration(args.calibration, graph) if args.calibration else None
    kw: dict[str, Any] = dict(data=data, train=train, calibration=cal,
                              latency=not args.no_latency, threads=args.threads,
                              progress=not args.quiet)
    if args.auto:
        g, report = compress(graph, max_accuracy_drop=0.01 if args.max_drop is None
                             else args.max_drop, time_budget_s=args.time_budget,
                             batch=args.batch, **kw)
    else:
        g, report = compress(graph, recipe, **kw)
    out = Path(args.output)
    if out.suffix.lower() == ".onnx":
        from ..onnx import to_onnx
        to_onnx(g, str(out))
    else:
        from ..fileformat import save
        save(g, str(out))
    text = report.to_markdown()
    if args.report:
        rp = Path(args.report)
        rp.write_text(json.dumps(report.to_dict(), indent=1) if rp.suffix.lower() == ".json"
                      else text + "\n", encoding="utf-8")
    if not args.quiet:
        print(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0
