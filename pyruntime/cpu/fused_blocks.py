"""Find the inverted-residual blocks (MobileNetV2) the CPU plan runs as one fused step.

A block is [1x1 expand Conv] -> depthwise Conv -> 1x1 project Conv, each intermediate
read by the next node only (and not a graph output), on an optimized graph (BatchNorm
folded, activations and the residual Add fused into the Conv epilogues). The plan step
keeps a few rows of the expanded activation in a per-thread buffer instead of writing
it to memory and reading it back twice; anything this does not match runs as separate
steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..graph import Graph, Node
from ..shapes import consumers, node_attrs, producers


@dataclass(frozen=True)
class InvertedResidual:
    """Node indices of one block; `expand` is None for a block without expand conv."""
    expand: int | None
    dw: int
    project: int

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(i for i in (self.expand, self.dw, self.project) if i is not None)


def _conv(g: Graph, n: Node, i: int) -> dict | None:
    """The attrs of a Conv with a weight W, else None."""
    if n.op != "Conv" or len(n.inputs) < 2 or n.inputs[1] not in g.weights:
        return None
    return node_attrs(n, i)


def _pointwise(g: Graph, n: Node, i: int) -> bool:
    a = _conv(g, n, i)
    return (a is not None and a["group"] == 1 and tuple(g.weights[n.inputs[1]].shape[2:]) == (1, 1)
            and tuple(a["strides"]) == (1, 1) and tuple(a["dilations"]) == (1, 1)
            and not any(a["pads"]))


def _depthwise(g: Graph, shapes: dict[str, tuple], n: Node, i: int) -> bool:
    a = _conv(g, n, i)
    return (a is not None and a["group"] != 1 and a["group"] == shapes[n.inputs[0]][1]
            and not a["residual"])


def find_inverted_residuals(g: Graph, shapes: dict[str, tuple]) -> list[InvertedResidual]:
    """Every block of the optimized graph `g`, in node order, no node in two blocks."""
    cons, prod = consumers(g), producers(g)
    outs = set(g.outputs)

    def only_reader(value: str, reader: int) -> bool:
        return cons.get(value) == [reader] and value not in outs

    blocks: list[InvertedResidual] = []
    taken: set[int] = set()
    for p, proj in enumerate(g.nodes):
        if p in taken or not _pointwise(g, proj, p) or len(shapes[proj.outputs[0]]) != 4:
            continue
        a = node_attrs(proj, p)
        if a["residual"]:
            r = proj.inputs[3]
            if r in g.weights or tuple(shapes.get(r, ())) != tuple(shapes[proj.outputs[0]]):
                continue  # a broadcast residual is a separate Add
        d = prod.get(proj.inputs[0])
        if d is None or d in taken or not only_reader(proj.inputs[0], p) \
                or not _depthwise(g, shapes, g.nodes[d], d):
            continue
        dw = g.nodes[d]
        e = prod.get(dw.inputs[0])
        if (e is None or e in taken or not only_reader(dw.inputs[0], d)
                or not _pointwise(g, g.nodes[e], e) or node_attrs(g.nodes[e], e)["residual"]):
            e = None
        blk = InvertedResidual(e, d, p)
        blocks.append(blk)
        taken.update(blk.nodes)
    return blocks
