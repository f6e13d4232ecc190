"""The live page: one HTML response with its CSS and JavaScript inlined from package data.

Inlining means a single request (which the token guards) and nothing loaded
from anywhere else; the Content-Security-Policy allows exactly these inline
blocks (by hash), images from data: URLs and connections to this server.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

STATIC = Path(__file__).parent / "static"


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@dataclass(frozen=True)
class Page:
    html: bytes
    headers: Dict[str, str]


def build_page() -> Page:
    css = (STATIC / "app.css").read_text(encoding="utf-8")
    js = (STATIC / "app.js").read_text(encoding="utf-8")
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    html = html.replace("<style></style>", f"<style>{css}</style>").replace(
        "<script></script>", f"<script>{js}</script>"
    )
    csp = (
        "default-src 'none'; "
        f"script-src {_sha256_source(js)}; style-src {_sha256_source(css)}; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return Page(html.encode(), {"Content-Security-Policy": csp, "X-Frame-Options": "DENY"})
