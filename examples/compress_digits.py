"""rt.compress on scikit-learn's digits: the teacher CNN pruned, fine-tuned and quantized
by a recipe, then the automatic search within one point of accuracy; prints both reports
(the README's compression table comes from this script)."""

from __future__ import annotations

import pyruntime as rt
from pyruntime import train
from pyruntime.train import digits


def main() -> None:
    xtr, ytr, xte, yte = digits.load()
    teacher = train.fit(digits.teacher_cnn(), xtr, ytr, epochs=30, learning_rate=3e-3,
                        validation_split=0.1, patience=5, progress=False)
    recipe = [{"prune": {"sparsity": 0.9, "block": [16, 1]}},
              {"finetune": {"epochs": 20, "learning_rate": 3e-3}},
              {"quantize": {"dtype": "int8"}}]
    _, rep = rt.compress(teacher, recipe, data=(xte, yte), train=(xtr, ytr),
                         progress=False, timing_blocks=9)
    print(rep.to_markdown())
    print()
    _, rep = rt.compress(teacher, data=(xte, yte), max_accuracy_drop=0.01, progress=False,
                         timing_blocks=9)
    print(rep.to_markdown())


if __name__ == "__main__":
    main()
