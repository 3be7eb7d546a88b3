"""Model compression: `rt.compress` runs a recipe of steps (distill, prune, fine-tune,
quantize) or searches per layer for the fastest model within an accuracy budget, and
reports every stage.

- `recipe`: the recipe format and its up-front checks (also TOML).
- `api`: `compress` itself, one step at a time.
- `auto`: the automatic search (timing each layer's candidate formats on this machine).
- `report`: `CompressReport` (rows per stage, Markdown/dict), the alternating timer.
- `data`: the one check of the data it takes; top-1 accuracy on the CPU Session.
"""

from __future__ import annotations

from .api import compress
from .auto import CANDIDATES
from .recipe import KINDS, Step, load_recipe, parse_recipe
from .report import CompressReport, StageRow

__all__ = ["compress", "CANDIDATES", "KINDS", "Step", "load_recipe", "parse_recipe",
           "CompressReport", "StageRow"]
