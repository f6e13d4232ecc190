"""The acceptance gate's verdict for one precision, typed: the one reader and writer of ``manifest.parity``.

The manifest keeps the verdicts as JSON (``parity.fp32``, ``parity.int8``)::

    {"passed": true, "reasons": [], "metrics": {...}, "thresholds": {...}, ...}
    {"passed": null, "reason": "no --validate data: INT8 not gated, so not used by 'auto'"}

Code reads them with :func:`verdict_of` and writes them with
:meth:`GateVerdict.to_dict`, so nothing else spells the keys.  A missing or
malformed entry reads as "not run" (``passed is None``), never as passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

_OWN_KEYS = ("passed", "reasons", "reason")


@dataclass(frozen=True)
class GateVerdict:
    """``passed``: True or False when the gate ran, None when it did not (``reasons`` then says why).

    ``figures``: what the gate measured and against what (``metrics``,
    ``thresholds``, ``limit``, ``max_abs_delta_p``, ``cells``, …), as stored.
    """

    precision: str
    passed: Optional[bool]
    reasons: Tuple[str, ...] = ()
    figures: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def not_run(cls, precision: str, why: str) -> GateVerdict:
        return cls(precision, None, (why,))

    @classmethod
    def from_dict(cls, precision: str, data: Any) -> GateVerdict:
        if not isinstance(data, Mapping):
            return cls.not_run(precision, "no verdict recorded")
        passed = data.get("passed")
        if not isinstance(passed, bool):  # 1, "true": not a verdict the gate wrote
            passed = None
        raw = data.get("reasons", data.get("reason", ()))
        reasons = (raw,) if isinstance(raw, str) else tuple(str(r) for r in raw or ())
        figures = {k: v for k, v in data.items() if k not in _OWN_KEYS}
        return cls(precision, passed, reasons, figures)

    def to_dict(self) -> Dict[str, Any]:
        """The manifest's JSON form (``reason`` as one string when the gate did not run)."""
        if self.passed is None:
            return {"passed": None, "reason": "; ".join(self.reasons), **self.figures}
        return {"passed": self.passed, "reasons": list(self.reasons), **self.figures}

    @property
    def status(self) -> str:
        """``passed``, ``failed`` or ``not run``."""
        return {True: "passed", False: "failed"}.get(self.passed, "not run")  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        """A field by its manifest name (``verdict["metrics"]``, ``verdict["passed"]``)."""
        return self.to_dict()[key]


def verdict_of(parity: Any, precision: str) -> GateVerdict:
    """The verdict for ``precision`` in a manifest's ``parity`` section (not run when absent)."""
    section = parity.get(precision) if isinstance(parity, Mapping) else None
    return GateVerdict.from_dict(precision, section)


def int8_passed(manifest: Any) -> bool:
    """True only when the manifest records an INT8 gate that ran and passed."""
    return verdict_of(getattr(manifest, "parity", None), "int8").passed is True
