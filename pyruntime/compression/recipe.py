"""Compression recipes: an ordered list of steps, checked before anything runs.

A recipe is a list of one-key dicts, `[{kind: {options}}, ...]`, run in order on the
current graph (a Python list, or TOML: `[[step]]` tables with a `kind` key, see
`load_recipe`). Kinds and options (defaults in brackets):

- distill: `teacher` (an rt.Graph or a model file path): the current graph is the
  student; or `student` (Graph or path): the current graph is the teacher and the
  student is trained. temperature [4.0], alpha [0.5], epochs [20], learning_rate [1e-3],
  batch_size [64]. Needs training data.
- prune: sparsity (required, in [0, 1)), block [None: unstructured; [r, c] blocks],
  scope ["global"], gradual [False: one shot; True: Zhu & Gupta's schedule while
  training, needs training data], epochs [10, gradual only], learning_rate [1e-3],
  exclude [[]: layer node or kernel weight names kept dense, as rt.prune's].
- finetune: epochs [10], learning_rate [1e-3], batch_size [64]. Pruned zeros stay zero.
  Needs training data.
- quantize: dtype (required: "int8", "fp16" or "bf16"), method ["minmax"],
  calibrate [True: static int8 from the calibration data when there is any; False:
  dynamic], per_channel [True], percentile [99.99], exclude [[]: layers kept in float,
  as rt.quantize's]. Must be the last step (nothing trains or prunes int8 weights).

Why up front: a typo in step 4 should not surface after twenty minutes of training.
Every error is an rt.InputError naming the step (1-based) and the key.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError, ModelFormatError
from ..graph import Graph

__all__ = ["Step", "parse_recipe", "load_recipe", "KINDS", "TRAINING_KINDS"]

_DTYPES = ("int8", "fp16", "bf16")

#: kind -> {key: default}; REQUIRED marks keys without a default.
REQUIRED = object()
KINDS: dict[str, dict[str, Any]] = {
    "distill": {"teacher": None, "student": None, "temperature": 4.0, "alpha": 0.5,
                "epochs": 20, "learning_rate": 1e-3, "batch_size": 64},
    "prune": {"sparsity": REQUIRED, "block": None, "scope": "global", "gradual": False,
              "epochs": 10, "learning_rate": 1e-3, "exclude": ()},
    "finetune": {"epochs": 10, "learning_rate": 1e-3, "batch_size": 64},
    "quantize": {"dtype": REQUIRED, "method": "minmax", "calibrate": True,
                 "per_channel": True, "percentile": 99.99, "exclude": ()},
}
TRAINING_KINDS = ("distill", "finetune")


@dataclass(frozen=True)
class Step:
    """One checked step: its kind and every option (defaults filled in)."""
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        return self.kind in TRAINING_KINDS or (self.kind == "prune" and self.options["gradual"])

    def describe(self) -> str:
        """A short label for the report: `prune 0.9 block 16x1 gradual`."""
        o = self.options
        if self.kind == "prune":
            s = f"prune {o['sparsity']:g}"
            s += f" block {o['block'][0]}x{o['block'][1]}" if o["block"] else ""
            return s + (f" gradual {o['epochs']} ep" if o["gradual"] else "")
        if self.kind == "quantize":
            return f"quantize {o['dtype']}"
        if self.kind == "finetune":
            return f"finetune {o['epochs']} ep"
        return f"distill {'into student' if o['student'] is not None else 'from teacher'} " \
               f"{o['epochs']} ep"


def _where(i: int, kind: str, key: str | None = None) -> str:
    return f"recipe step {i + 1} ({kind})" + (f": {key}" if key else "")


def _pos_int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise InputError(f"{where}: expected an integer >= 1, got {v!r}")
    return int(v)


def _pos_float(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) \
            or not 0.0 < float(v) < math.inf:
        raise InputError(f"{where}: expected a positive finite number, got {v!r}")
    return float(v)


def _model(v: Any, where: str) -> Graph:
    if isinstance(v, Graph):
        return v
    if isinstance(v, (str, os.PathLike)):
        p = Path(v)
        if not p.is_file():
            raise InputError(f"{where}: model file {str(p)!r} does not exist")
        if p.suffix.lower() not in (".onnx", ".pyrt"):
            raise ModelFormatError(f"{where}: expected a .onnx or .pyrt file, got {str(p)!r}")
        from ..serve.models import load_graph
        return load_graph(p)
    raise InputError(f"{where}: expected an rt.Graph or a model file path, got "
                     f"{type(v).__name__}")


def _check_step(i: int, kind: str, opts: Mapping[str, Any]) -> Step:
    spec = KINDS[kind]
    unknown = sorted(set(opts) - set(spec))
    if unknown:
        raise InputError(f"{_where(i, kind, unknown[0])}: unknown key; expected one of "
                         f"{sorted(spec)}")
    o = {k: opts.get(k, d) for k, d in spec.items()}
    missing = [k for k, v in o.items() if v is REQUIRED]
    if missing:
        raise InputError(f"{_where(i, kind, missing[0])}: required key is missing")
    w = lambda key: _where(i, kind, key)  # noqa: E731
    for key in ("epochs", "batch_size"):
        if key in o:
            o[key] = _pos_int(o[key], w(key))
    for key in ("learning_rate", "temperature"):
        if key in o:
            o[key] = _pos_float(o[key], w(key))
    if "exclude" in o:  # the names themselves are checked against the graph at the step
        x = o["exclude"]
        if isinstance(x, (str, bytes)) or not isinstance(x, (list, tuple)) or \
                not all(isinstance(n, str) for n in x):
            raise InputError(f"{w('exclude')}: expected a list of layer or weight names, "
                             f"got {x!r:.80}")
        o["exclude"] = tuple(x)
    if kind == "distill":
        if (o["teacher"] is None) == (o["student"] is None):
            raise InputError(f"{_where(i, kind)}: expected exactly one of 'teacher' (the "
                             f"current graph is the student) or 'student' (it is the teacher)")
        for key in ("teacher", "student"):
            if o[key] is not None:
                o[key] = _model(o[key], w(key))
        a = o["alpha"]
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0 <= float(a) <= 1:
            raise InputError(f"{w('alpha')}: expected a number in [0, 1], got {a!r}")
        o["alpha"] = float(a)
    elif kind == "prune":
        s = o["sparsity"]
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not 0 <= float(s) < 1:
            raise InputError(f"{w('sparsity')}: expected a fraction in [0, 1), got {s!r}")
        o["sparsity"] = float(s)
        b = o["block"]
        if b is not None:
            if isinstance(b, (str, bytes)) or not hasattr(b, "__len__") or len(b) != 2 or \
                    not all(isinstance(x, numbers.Integral) and not isinstance(x, bool)
                            and x >= 1 for x in b):
                raise InputError(f"{w('block')}: expected two integers >= 1 [rows, cols], "
                                 f"got {b!r}")
            o["block"] = (int(b[0]), int(b[1]))
        if o["scope"] not in ("global", "layer"):
            raise InputError(f"{w('scope')}: expected 'global' or 'layer', got {o['scope']!r}")
        if not isinstance(o["gradual"], bool):
            raise InputError(f"{w('gradual')}: expected true or false, got {o['gradual']!r}")
    elif kind == "quantize":
        if o["dtype"] not in _DTYPES:
            raise InputError(f"{w('dtype')}: expected one of {_DTYPES}, got {o['dtype']!r}")
        if o["method"] not in ("minmax", "percentile", "entropy"):
            raise InputError(f"{w('method')}: expected 'minmax', 'percentile' or 'entropy', "
                             f"got {o['method']!r}")
        for key in ("calibrate", "per_channel"):
            if not isinstance(o[key], bool):
                raise InputError(f"{w(key)}: expected true or false, got {o[key]!r}")
        pc = o["percentile"]
        if isinstance(pc, bool) or not isinstance(pc, numbers.Real) or \
                not 50.0 < float(pc) <= 100.0:
            raise InputError(f"{w('percentile')}: expected a number in (50, 100], got {pc!r}")
        o["percentile"] = float(pc)
    return Step(kind, o)


def parse_recipe(recipe: Any) -> list[Step]:
    """Check a recipe (a list of {kind: options} dicts, one step dict, or a TOML file
    path) and return its Steps with defaults filled in."""
    if isinstance(recipe, (str, os.PathLike)):
        return load_recipe(recipe)
    if isinstance(recipe, Mapping):
        recipe = [recipe]
    if not isinstance(recipe, (list, tuple)) or not recipe:
        raise InputError(f"recipe: expected a non-empty list of steps like "
                         f"[{{'prune': {{'sparsity': 0.9}}}}], got {recipe!r:.80}")
    steps = []
    for i, item in enumerate(recipe):
        if isinstance(item, Step):
            item = {item.kind: item.options}
        if not isinstance(item, Mapping) or len(item) != 1:
            raise InputError(f"recipe step {i + 1}: expected a dict with one key (the kind: "
                             f"{', '.join(KINDS)}), got {item!r:.80}")
        (kind, opts), = item.items()
        if kind not in KINDS:
            raise InputError(f"recipe step {i + 1}: unknown kind {kind!r}; expected one of "
                             f"{', '.join(KINDS)}")
        if opts is None:
            opts = {}
        if not isinstance(opts, Mapping):
            raise InputError(f"{_where(i, kind)}: expected a dict of options, got {opts!r:.80}")
        steps.append(_check_step(i, kind, opts))
    for i, s in enumerate(steps[:-1]):
        if s.kind == "quantize":
            raise InputError(f"{_where(i, 'quantize')}: quantize must be the last step "
                             f"(step {i + 2} is {steps[i + 1].kind}; int8 weights are not "
                             f"pruned or trained)")
    return steps


def load_recipe(path: str | os.PathLike) -> list[Step]:
    """Read a TOML recipe: one `[[step]]` table per step, with `kind` and its options:

        [[step]]
        kind = "prune"
        sparsity = 0.9
        block = [16, 1]

    Relative model paths (distill teacher/student) are taken from the recipe's folder."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            from ..errors import MissingDependencyError
            raise MissingDependencyError("reading a TOML recipe on Python 3.10 needs tomli: "
                                         "pip install tomli") from None
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"recipe file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"recipe file {str(p)!r} cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"recipe file {str(p)!r} is not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"step"})
    if extra or not isinstance(doc.get("step"), list):
        raise InputError(f"recipe file {str(p)!r}: expected only [[step]] tables, got "
                         f"{extra or 'no [[step]] table'}")
    items = []
    for i, t in enumerate(doc["step"]):
        t = dict(t)
        kind = t.pop("kind", None)
        if not isinstance(kind, str):
            raise InputError(f"recipe file {str(p)!r}: step {i + 1} has no kind = \"...\"")
        for key in ("teacher", "student"):
            if isinstance(t.get(key), str) and not Path(t[key]).is_absolute():
                t[key] = str(p.parent / t[key])
        items.append({kind: t})
    try:
        return parse_recipe(items)
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
