"""NAVSIM's driving scores, PDMS (v1.1) and EPDMS (v2.2), in numpy + shapely, with the sequential loops and
per-point geometry compiled by numba (cached on disk: the first process compiles them, ~12 s CPU).

    from scorer import prepare, score
    cache = prepare(scene)                 # once per scene: map, route, reference planner (lazily)
    batch = score(cache, plans, "pdms")    # plans (K, 8, 3) in the ego frame -> ScoreBatch

Imports are lazy so that `import scorer` (and CLI start-up) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scorer.api import ScoreBatch, score, score_scene
    from scorer.cache import SceneCache, prepare

__all__ = ["ScoreBatch", "SceneCache", "prepare", "score", "score_scene"]

_SOURCES = {
    "ScoreBatch": "scorer.api",
    "score": "scorer.api",
    "score_scene": "scorer.api",
    "SceneCache": "scorer.cache",
    "prepare": "scorer.cache",
}


def __getattr__(name: str) -> object:
    if name in _SOURCES:
        import importlib

        return getattr(importlib.import_module(_SOURCES[name]), name)
    raise AttributeError(f"module 'scorer' has no attribute {name!r}")
