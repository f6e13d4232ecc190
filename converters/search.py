"""When INT8 fails the gate: find the layers most hurt by quantization and keep them in float.

A per-layer pass ranks every weighted layer (Conv, MatMul, Gemm) by how much
the model's output moves back towards FP32 when that one layer alone is kept
in float (leave-one-out, mean |Δp| on calibration cells, so the gate's own
cells do not choose the layers).  Then the top 1, 2, 3 … layers are kept in
float until the gate passes, or until half of the layers would be float, at
which point INT8 is not worth having and the search reports that it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# build(excluded) quantizes with those layers in float and returns a handle for the other two.
Build = Callable[[Sequence[str]], Any]
# drift(handle) -> mean |Δp| against FP32 on the ranking cells.
Drift = Callable[[Any], float]
# gate(handle) -> (metrics, reasons); no reasons means it passes.
Gate = Callable[[Any], Tuple[Dict[str, Any], List[str]]]


@dataclass
class SearchResult:
    passed: bool
    excluded: List[str]
    metrics: Optional[Dict[str, Any]]
    reasons: List[str]
    ranking: List[Tuple[str, float]] = field(default_factory=list)  # (layer, mean |Δp| with it in float)
    attempts: List[Dict[str, Any]] = field(default_factory=list)
    handle: Any = None  # what build() returned for the passing set of layers


def rank_layers(layers: Sequence[str], build: Build, drift: Drift) -> List[Tuple[str, float]]:
    """Layers ordered most sensitive first: the lower the drift with it in float, the more it matters."""
    scored = [(name, float(drift(build([name])))) for name in layers]
    return sorted(scored, key=lambda item: item[1])


def keep_in_float(
    layers: Sequence[str],
    build: Build,
    drift: Drift,
    gate: Gate,
    *,
    max_excluded: Optional[int] = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> SearchResult:
    """Keep the most sensitive layers in float, one more at a time, until ``gate`` passes."""
    limit = max_excluded if max_excluded is not None else max(1, len(layers) // 2)
    limit = min(limit, len(layers))
    if limit <= 0:
        return SearchResult(False, [], None, ["no layer may be kept in float (limit 0)"])
    log(f"per-layer pass: ranking {len(layers)} layer(s) by leave-one-out drift")
    ranking = rank_layers(layers, build, drift)
    for name, d in ranking[: min(5, len(ranking))]:
        log(f"  {name}: mean |Δp| {d:.4f} with it in float")
    result = SearchResult(False, [], None, [], ranking=ranking)
    for k in range(1, limit + 1):
        excluded = [name for name, _ in ranking[:k]]
        handle = build(excluded)
        metrics, reasons = gate(handle)
        result.attempts.append({"excluded": excluded, "flip_rate": metrics["flip_rate"], "passed": not reasons})
        result.excluded, result.metrics, result.reasons = excluded, metrics, reasons
        log(f"  {k} layer(s) in float: flips {100 * metrics['flip_rate']:.2f}% " + ("PASS" if not reasons else "fail"))
        if not reasons:
            result.passed, result.handle = True, handle
            return result
    result.reasons = [*result.reasons, f"still failing with {limit} of {len(layers)} layers in float"]
    return result
