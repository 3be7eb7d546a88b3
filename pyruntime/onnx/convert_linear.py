"""ONNX converters for matrix products and their affine neighbours: Gemm, MatMul
(+ Add merged into one Gemm), BatchNormalization."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelFormatError
from .proto import Unsupported


class LinearOps:
    """Converters `_op_<Op>(node)` of this family; mixed into the importer, whose
    helpers (act, const, weight, emit, attrs, ...) they call."""

    # ---- Gemm / MatMul
    def _op_Gemm(self, node: Any) -> None:
        a = self.attrs(node)
        if len(node.input) < 2:
            raise ModelFormatError(f"Gemm node {node.name!r} needs inputs A and B")
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        trans_a, trans_b = int(a.get("transA", 0)), int(a.get("transB", 0))
        a_name, b_name, c_name = node.input[0], node.input[1], self.inp(node, 2)
        x = self.act(a_name, node, "A")
        xs = self.shapes.get(x)
        if trans_a:
            x, xs = self._transposed_a(node, x, xs)
        b = self.float_const(b_name, node, "B")
        if b.ndim != 2:
            raise ModelFormatError(f"Gemm node {node.name!r}: B {b_name!r} has shape "
                                   f"{b.shape}; expected 2-D")
        with np.errstate(all="ignore"):  # inf/nan weights stay as the model has them
            w = (b.T if trans_b else b).astype(np.float64) * alpha
        k, n = w.shape
        if xs is not None:
            if len(xs) != 2:
                raise ModelFormatError(f"Gemm node {node.name!r}: A {a_name!r} has shape "
                                       f"{self._shape_str(a_name)}; expected 2-D [M, K]")
            if xs[1] is not None and xs[1] != k:
                raise ModelFormatError(f"Gemm node {node.name!r}: A{'^T' if trans_a else ''} "
                                       f"{list(xs)} and B{'^T' if trans_b else ''} "
                                       f"{list(w.shape)} disagree on K")
        tag = "" if (not trans_b and alpha == 1.0 and b.dtype == np.float32) else "kn"
        # an int8 DequantizeLinear'd B becomes a qc8 weight (alpha scales would round)
        wname = (self.qweight(b_name, "Gemm", bool(trans_b)) if alpha == 1.0 else None) \
            or self.weight(b_name, w if tag else b, tag)
        out = self.only_output(node)
        gemm_in = [x, wname]
        post_add: str | None = None
        if c_name and beta != 0.0:
            if c_name in self.consts:
                c = self.float_const(c_name, node, "C").astype(np.float64) * beta
                if c.size == 1 or c.shape in ((n,), (1, n)):
                    bias = np.broadcast_to(c.reshape(-1), (n,)) if c.size == 1 else c.reshape(n)
                    tag_c = "" if (beta == 1.0 and c.shape == (n,) and
                                   self.consts[c_name].dtype == np.float32) else "bias"
                    gemm_in.append(self.weight(c_name, bias if tag_c else
                                               self.consts[c_name], tag_c))
                else:
                    m = xs[0] if xs is not None else None
                    ok = c.ndim <= 2 and (c.ndim < 2 or c.shape[0] in (1, m) or m is None) \
                        and c.shape[-1] in (1, n)
                    if not ok:
                        raise ModelFormatError(f"Gemm node {node.name!r}: C {c_name!r} shape "
                                               f"{c.shape} does not broadcast to [M, {n}]")
                    post_add = self.weight(c_name, c, "" if beta == 1.0 else "beta")
            else:
                if beta != 1.0:
                    raise Unsupported(f"beta={beta:g} with a run-time C {c_name!r}")
                post_add = c_name
        if post_add is None:
            self.emit("Gemm", gemm_in, [out], name=node.name)
        else:
            tmp = self.fresh(f"{out}_gemm")
            self.emit("Gemm", gemm_in, [tmp], name=node.name)
            self.emit("Add", [tmp, post_add], [out], name=f"{node.name}_bias" if node.name
                      else "")

    def _transposed_a(self, node: Any, x: str, xs: tuple | None) -> tuple[str, tuple | None]:
        """transA=1: A [K, M] becomes a Transpose node's output [M, K]. The IR keeps the
        symbolic batch in the first dim, so A's first dim must be fixed."""
        if xs is not None and len(xs) != 2:
            raise ModelFormatError(f"Gemm node {node.name!r}: A {x!r} has shape "
                                   f"{self._shape_str(x)}; expected 2-D [K, M] (transA=1)")
        if xs is not None and xs[0] is None:
            raise Unsupported(f"transA=1 with a run-time A {x!r} of shape "
                              f"{self._shape_str(x)} whose first dim is the symbolic batch "
                              "(A^T would move the batch out of the first dim)")
        t = self.fresh(f"{x}_T")
        self.emit("Transpose", [x], [t], {"perm": (1, 0)},
                  f"{node.name}_transA" if node.name else "")
        return t, None if xs is None else (xs[1], xs[0])

    def _op_MatMul(self, node: Any) -> None:
        a_name, b_name = node.input[0], node.input[1]
        if a_name in self.consts or b_name not in self.consts:
            raise Unsupported("only X @ W with a run-time 2-D X and a constant 2-D W is "
                               "supported" + (f" (B {b_name!r} is computed at run time)"
                                              if b_name not in self.consts else
                                              f" (A {a_name!r} is a constant)"))
        b = self.float_const(b_name, node, "B")
        r = self.rank(a_name)
        if b.ndim != 2 or (r is not None and r != 2):
            raise Unsupported(f"A rank {r if r is not None else '?'} @ B rank {b.ndim}; only "
                               "2-D @ 2-D (-> Gemm) is supported")
        if r is None:
            raise Unsupported("the rank of A is unknown; only 2-D @ 2-D is supported")
        xs = self.shapes[a_name]
        if xs[1] is not None and xs[1] != b.shape[0]:
            raise ModelFormatError(f"MatMul node {node.name!r}: A {self._shape_str(a_name)} "
                                   f"@ B {list(b.shape)}: inner dimensions differ")
        wname = self.qweight(b_name, "Gemm") or self.weight(b_name, b)
        self.emit("Gemm", [a_name, wname], [self.only_output(node)],
                  name=node.name)

    def _merge_matmul_add(self) -> None:
        """Gemm without bias followed by Add of a [N]/[1, N] weight -> Gemm with bias (and
        Conv without bias + Add of an [O]/[1, O, 1, 1] weight -> Conv with bias).

        PyTorch/TF exports spell Linear as MatMul + Add; the canonical IR has one Gemm.
        """
        producers = {o: i for i, n in enumerate(self.nodes) for o in n.outputs}
        uses: dict[str, int] = {}
        for n in self.nodes:
            for x in n.inputs:
                uses[x] = uses.get(x, 0) + 1
        drop: set[int] = set()
        for j, add in enumerate(self.nodes):
            if add.op != "Add":
                continue
            for pos in (0, 1):
                y, other = add.inputs[pos], add.inputs[1 - pos]
                i = producers.get(y)
                if i is None or other not in self.weights or i in drop:
                    continue
                gemm = self.nodes[i]
                conv = gemm.op == "Conv" and not any(
                    k in gemm.attrs for k in ("activation", "residual"))
                if not conv and (gemm.op != "Gemm" or gemm.attrs):
                    continue
                if len(gemm.inputs) != 2 or gemm.inputs[1] not in self.weights:
                    continue
                if uses.get(y, 0) != 1 or y in self.graph_outputs:
                    continue
                n = self.weights[gemm.inputs[1]].shape[0 if conv else 1]
                bshape = self.weights[other].shape
                # Conv: quantize_dynamic's ConvInteger bias, reshaped to [1, O, 1, 1]
                if bshape not in (((n,), (1, n, 1, 1), (n, 1, 1)) if conv else ((n,), (1, n))):
                    continue
                bias = other if bshape == (n,) else self.weight(
                    other, self.weights[other].numpy().reshape(n), "vec")
                gemm.inputs.append(bias)
                gemm.outputs = list(add.outputs)
                drop.add(j)
                break
        if drop:
            self.nodes = [n for j, n in enumerate(self.nodes) if j not in drop]
            used = {x for n in self.nodes for x in n.inputs}
            for w in [w for w in self.weights if w not in used]:
                del self.weights[w]

    def _op_BatchNormalization(self, node: Any) -> None:
        x = self.act(node.input[0], node)
        a = self.attrs(node)
        if int(a.get("training_mode", 0)):
            raise Unsupported("training_mode=1 (batch statistics) is not supported; "
                               "export the model in eval mode")
        if self.opset < 9 and int(a.get("spatial", 1)) == 0:
            raise Unsupported("spatial=0 (per-activation statistics) is not supported")
        if len(node.input) != 5:
            raise ModelFormatError(f"BatchNormalization node {node.name!r} needs 5 inputs, "
                                   f"has {len(node.input)}")
        params = []
        c = None
        for nm, what in zip(node.input[1:], ("scale", "B", "mean", "var")):
            arr = self.float_const(nm, node, what)
            if arr.ndim != 1 or (c is not None and arr.shape[0] != c):
                raise ModelFormatError(f"BatchNormalization node {node.name!r}: {what} {nm!r} "
                                       f"has shape {arr.shape}; expected [C] like the others")
            c = arr.shape[0]
            params.append(self.weight(nm, arr))
        xs = self.shapes.get(x)
        if xs is not None and (len(xs) < 2 or (xs[1] is not None and xs[1] != c)):
            raise ModelFormatError(f"BatchNormalization node {node.name!r}: input "
                                   f"{self._shape_str(x)} does not have {c} channels in dim 1")
        self.emit("BatchNormalization", [x, *params], [self.only_output(node)],
                  {"epsilon": float(a.get("epsilon", 1e-5))}, node.name)
