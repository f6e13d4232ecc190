"""C-NMC file names: ``UID_<subject>_<image>_<cell>_<all|hem>``.

Labels in C-NMC belong to subjects, so every split and every per-subject
metric starts here.  Normal donors are ``H<n>``; the dataset writes at least
one in lower case (``h3``), which is folded to upper case so that a donor is
never split in two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

_NAME = re.compile(r"^UID_(?P<subject>[A-Za-z]?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<label>all|hem)$", re.IGNORECASE)


@dataclass(frozen=True)
class CnmcName:
    subject: str  # "23" for an ALL patient, "H22" for a normal donor
    image: int
    cell: int
    label: str  # "all" or "hem"

    @property
    def is_normal_donor(self) -> bool:
        return self.subject.startswith("H")


def parse_cnmc_name(name: str | PurePath) -> CnmcName | None:
    """Parse a C-NMC file name (with or without folder and suffix); None if it is not one."""
    stem = PurePath(name).stem
    m = _NAME.match(stem)
    if not m:
        return None
    subject = m["subject"].upper()
    return CnmcName(subject=subject, image=int(m["image"]), cell=int(m["cell"]), label=m["label"].lower())
