"""ONNX converters over H and W: Conv, MaxPool/AveragePool, the global pools, and Pad
(merged into the pads of the Conv/pool after it)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ModelFormatError
from ..shapes import ceil_adds_window, same_pads
from .proto import Unsupported, pair


class SpatialOps:
    """Converters `_op_<Op>(node)` of this family; mixed into the importer, whose
    helpers (act, const, weight, emit, attrs, ...) they call."""

    def _op_GlobalAveragePool(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        r = self.rank(x)
        if r is not None and r != 4:
            raise Unsupported(f"input of rank {r}; only 2-D spatial inputs [N, C, H, W] "
                               "are supported")
        self.emit("GlobalAveragePool", [x], [self.only_output(node)], name=node.name)

    def _op_GlobalMaxPool(self, node: Any) -> None:
        """MaxPool with one window covering H x W (the IR has no GlobalMaxPool)."""
        x = self.act(node.input[0], node)
        hw = self._spatial(node, x)
        if hw is None:
            raise Unsupported("GlobalMaxPool needs the input's spatial size, which is "
                               "unknown here")
        self.emit("MaxPool", [x], [self.only_output(node)],
                  {"kernel_shape": hw, "strides": (1, 1), "pads": (0, 0, 0, 0),
                   "dilations": (1, 1), "ceil_mode": 0}, node.name)

    # ---- Pad (merged into the next Conv / pool)
    def _op_Pad(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        mode = a.get("mode", "constant")
        if mode != "constant":
            raise Unsupported(f"mode={mode!r}; only constant padding (merged into a "
                               "following Conv/pool) is supported")
        r = self.rank(x)
        if self.opset < 11:
            if "pads" not in a:
                raise ModelFormatError(f"Pad node {node.name!r} has no pads attribute")
            pads = [int(v) for v in a["pads"]]
            value = float(a.get("value", 0.0))
        else:
            pads = [int(v) for v in np.asarray(self.const(self.inp(node, 1), "pads"))
                    .reshape(-1)] if self.inp(node, 1) else []
            value = 0.0
            if self.inp(node, 2):
                v = np.asarray(self.const(self.inp(node, 2), "constant_value"))
                if v.size != 1:
                    raise ModelFormatError(f"Pad node {node.name!r}: constant_value must be "
                                           f"a scalar, got shape {v.shape}")
                value = float(v.reshape(-1)[0])
            if self.inp(node, 3):
                if r is None:
                    raise Unsupported("Pad with axes on an input of unknown rank")
                axes = [int(v) % r for v in np.asarray(self.const(self.inp(node, 3), "axes"))
                        .reshape(-1)]
                if len(pads) != 2 * len(axes):
                    raise ModelFormatError(f"Pad node {node.name!r}: {len(pads)} pads for "
                                           f"{len(axes)} axes")
                full = [0] * (2 * r)
                for j, ax in enumerate(axes):
                    full[ax], full[ax + r] = pads[j], pads[j + len(axes)]
                pads = full
        if r is not None and len(pads) != 2 * r:
            raise ModelFormatError(f"Pad node {node.name!r}: {len(pads)} pads for a rank-{r} "
                                   "input")
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise Unsupported(f"pads {pads}; only non-negative padding of H and W of an "
                               "[N, C, H, W] tensor merges into a Conv/pool")
        self.pending_pads[self.only_output(node)] = (x, [pads[2], pads[3], pads[6], pads[7]],
                                                     value)

    def _padded_input(self, node: Any, name: str, need: str) -> tuple[str, list[int]]:
        """(source, extra pads) when `name` is a pending Pad with value `need`, else
        (name, zeros). need: "zero" or "-inf"."""
        if name not in self.pending_pads:
            return self.act(name, node, "X"), [0, 0, 0, 0]
        src, extra, value = self.pending_pads[name]
        ok = value == 0.0 if need == "zero" else value == -math.inf
        if not ok:
            raise Unsupported(f"input {name!r} is a Pad with value {value:g}; only "
                               f"{'0' if need == 'zero' else '-inf'} padding merges into "
                               f"{node.op_type}")
        return src, extra

    # ---- Conv and pooling
    def _spatial(self, node: Any, x: str) -> tuple[int, int] | None:
        s = self.shapes.get(x)
        if s is None:
            return None
        if len(s) != 4:
            raise Unsupported(f"input {x!r} has rank {len(s)}; only 2-D spatial inputs "
                               "[N, C, H, W] are supported")
        if s[2] is None or s[3] is None:
            return None
        return int(s[2]), int(s[3])

    def _pads(self, node: Any, a: dict, x: str, kernel: tuple[int, int],
              strides: tuple[int, int], dil: tuple[int, int]) -> list[int]:
        """Explicit (top, left, bottom, right) pads from pads/auto_pad."""
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
            if len(pads) != 4:
                raise Unsupported(f"pads has {len(pads)} values; only 2-D (4 values) is "
                                   "supported")
            if any(p < 0 for p in pads):
                raise Unsupported(f"negative pads {pads} (cropping) are not supported")
            return pads
        if auto == "VALID":
            return [0, 0, 0, 0]
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            raise ModelFormatError(f"{node.op_type} node {node.name!r}: unknown auto_pad "
                                   f"{auto!r}")
        hw = self._spatial(node, x)
        if hw is None:
            raise Unsupported(f"auto_pad={auto} needs the input's spatial size, which is "
                              "unknown here")
        return list(same_pads(hw, kernel, strides, dil, lower=auto == "SAME_LOWER"))

    def _op_Conv(self, node: Any) -> None:
        a = self.attrs(node)
        x = node.input[0]
        src, extra = self._padded_input(node, x, "zero")
        if len(node.input) < 2:
            raise ModelFormatError(f"Conv node {node.name!r} has no weight input")
        w = self.float_const(node.input[1], node, "W")
        if w.ndim != 4:
            raise Unsupported(f"{w.ndim - 2}-D convolution (W shape {list(w.shape)}); only "
                               "2-D Conv is supported")
        self._spatial(node, x)  # rank check
        kernel = tuple(int(v) for v in w.shape[2:])
        if "kernel_shape" in a and tuple(int(v) for v in a["kernel_shape"]) != kernel:
            raise ModelFormatError(f"Conv node {node.name!r}: kernel_shape "
                                   f"{list(a['kernel_shape'])} disagrees with W shape "
                                   f"{list(w.shape)}")
        strides = pair(a.get("strides", [1, 1]), "strides")
        dil = pair(a.get("dilations", [1, 1]), "dilations")
        if min(strides) < 1 or min(dil) < 1:
            raise ModelFormatError(f"Conv node {node.name!r}: strides {strides} and "
                                   f"dilations {dil} must be >= 1")
        group = int(a.get("group", 1))
        o, ipg = int(w.shape[0]), int(w.shape[1])
        xs = self.shapes.get(x)
        c_in = xs[1] if xs is not None else None
        if c_in is not None and c_in != ipg * group:
            raise ModelFormatError(f"Conv node {node.name!r}: input has {c_in} channels but "
                                   f"W {list(w.shape)} with group={group} expects {ipg * group}")
        if group != 1 and not (ipg == 1 and o == group):
            kind = (f"depthwise with channel multiplier {o // group}" if ipg == 1
                    else f"grouped convolution with group={group}")
            raise Unsupported(f"{kind} (W {list(w.shape)}); only group=1 or depthwise "
                               "group=C_in=C_out is supported")
        pads = [p + q for p, q in zip(self._pads(node, a, x, kernel, strides, dil), extra)]
        ins = [src, self.qweight(node.input[1], "Conv") or self.weight(node.input[1], w)]
        bname = self.inp(node, 2)
        if bname:
            b = self.float_const(bname, node, "B")
            if b.shape != (o,):
                raise ModelFormatError(f"Conv node {node.name!r}: bias {bname!r} has shape "
                                       f"{b.shape}; expected ({o},)")
            ins.append(self.weight(bname, b))
        self.emit("Conv", ins, [self.only_output(node)],
                  {"strides": strides, "pads": tuple(pads), "dilations": dil, "group": group},
                  node.name)

    def _pool(self, node: Any, op: str) -> None:
        a = self.attrs(node)
        x = node.input[0]
        src, extra = self._padded_input(node, x, "-inf" if op == "MaxPool" else "zero")
        outs = list(node.output)
        if len(outs) > 1 and outs[1]:
            raise Unsupported("the Indices output (second output) is not supported")
        if "kernel_shape" not in a:
            raise ModelFormatError(f"{op} node {node.name!r} has no kernel_shape")
        kernel = pair(a["kernel_shape"], "kernel_shape")
        hw = self._spatial(node, x)
        strides = pair(a.get("strides", [1, 1]), "strides")
        dil = pair(a.get("dilations", [1, 1]), "dilations")
        if min(kernel) < 1 or min(strides) < 1 or min(dil) < 1:
            raise ModelFormatError(f"{op} node {node.name!r}: kernel_shape, strides and "
                                   "dilations must be >= 1")
        if dil != (1, 1) and a.get("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
            # The spec's output size ceil(in / stride) needs dilated-kernel padding, but
            # onnxruntime pads for the undilated kernel: the result would depend on whom
            # one believes, so refuse rather than guess.
            raise Unsupported(f"auto_pad={a['auto_pad']} with dilations {list(dil)} (ONNX "
                               "runtimes disagree on its padding); use explicit pads")
        pads = self._pads(node, a, x, kernel, strides, dil)
        cip = int(a.get("count_include_pad", 0))
        ceil = int(a.get("ceil_mode", 0))
        if ceil:
            if a.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID") and hw is None:
                raise Unsupported("ceil_mode=1 with auto_pad needs the input's spatial size")
            if hw is not None and not any(
                    ceil_adds_window(size, k, s, d, pads[i], pads[i + 2])
                    for i, (size, k, s, d) in enumerate(zip(hw, kernel, strides, dil))):
                ceil = 0  # ceil and floor give the same windows: canonical form is floor
        if any(extra):
            if op == "AveragePool" and not cip:
                if any(pads):
                    raise Unsupported("a Pad before an AveragePool with its own pads and "
                                       "count_include_pad=0 (the Pad's zeros count, the "
                                       "pool's pads do not)")
                cip = 1  # the Pad's zeros are data: they count in every average
            pads = [p + q for p, q in zip(pads, extra)]
            ext = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
            if any(pads[i] >= ext[i % 2] for i in range(4)):
                raise Unsupported(f"Pad merged into {op} gives pads {pads}, not smaller than "
                                   f"the window {ext} (a window would see padding only)")
        attrs: dict[str, Any] = {"kernel_shape": kernel, "strides": strides,
                                 "pads": tuple(pads), "ceil_mode": ceil}
        if dil != (1, 1):
            attrs["dilations"] = dil
        # MaxPool's storage_order only changes the Indices output, rejected above.
        if op == "AveragePool":
            attrs["count_include_pad"] = cip
        self.emit(op, [src], [outs[0]], attrs, node.name)

    def _op_MaxPool(self, node: Any) -> None:
        self._pool(node, "MaxPool")

    def _op_AveragePool(self, node: Any) -> None:
        self._pool(node, "AveragePool")
