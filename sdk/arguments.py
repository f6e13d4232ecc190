"""How an error names the argument it is about: the Python argument, with the CLI flag that sets it.

The same check serves ``Screener(preprocess="cuda")`` and ``leukedge screen
--preprocess cuda``, so its message names both::

    preprocess='cuda' (--preprocess cuda): pycuda is not installed

and the CLI, printing it, keeps only its own vocabulary (:func:`for_cli`)::

    --preprocess cuda: pycuda is not installed
"""

from __future__ import annotations

import re
from typing import Any, Dict

# Python argument → CLI flag, where the flag is not simply ``--`` + the name with dashes.
FLAGS: Dict[str, str] = {"outs": "--out", "batch_sizes": "--batch-size"}
_NAMED = re.compile(r"\b\w+=(?:'[^']*'|[^\s()]+) \((--[^()]*)\)")


def flag(name: str) -> str:
    """The CLI flag of Python argument ``name``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def arg(name: str, value: Any) -> str:
    """``name='value' (--flag value)``."""
    shown = f"'{value}'" if isinstance(value, str) else str(value)
    return f"{name}={shown} ({flag(name)} {value})"


def for_cli(text: str) -> str:
    """``text`` with every ``name='value' (--flag value)`` written as the CLI's ``--flag value``."""
    return _NAMED.sub(lambda m: m.group(1), text)
