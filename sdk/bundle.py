"""The model bundle: a folder holding ``manifest.json`` and the model files it names.

``Bundle.load`` validates the manifest, checks that every file it names is
there and (by default) that its SHA-256 matches, so a runtime never serves a
model other than the one the manifest describes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from leukedge.errors import BundleError
from leukedge.manifest import Manifest, ModelFile

MANIFEST_NAME = "manifest.json"
REFERENCE_BUNDLE = Path(__file__).parent / "models" / "reference"
# The precisions a runtime can ask for and the manifest file key that serves each.
PRECISION_FILES = {"fp32": "onnx_fp32", "fp16": "onnx_fp32", "int8": "onnx_int8"}


def sha256_file(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class Bundle:
    """A loaded, validated model bundle."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, verify: bool = True) -> Bundle:
        """Load the bundle in folder ``path`` (None or "reference": the one shipped with leukedge)."""
        root = REFERENCE_BUNDLE if path in (None, "reference") else Path(path)
        if root.is_file() and root.name == MANIFEST_NAME:
            root = root.parent
        if not root.is_dir():
            hint = "make one with 'leukedge convert model.h5 --out BUNDLE_DIR'"
            if root.suffix in (".h5", ".keras", ".onnx"):
                hint = f"{root.name} is a model file, not a bundle; " + hint
            raise BundleError(f"{root}: not a model bundle folder", hint=hint)
        manifest = Manifest.load(root / MANIFEST_NAME)
        if not manifest.files:
            raise BundleError(
                f"{root / MANIFEST_NAME}: field 'files' lists no model file",
                hint="re-create the bundle with 'leukedge convert'",
            )
        bundle = cls(root, manifest)
        for key, mf in manifest.files.items():
            p = bundle.path_of(key)
            if not p.is_file():
                raise BundleError(
                    f"{root}: manifest field 'files.{key}' names {mf.path}, which is missing",
                    hint="copy the whole bundle folder, or re-create it with 'leukedge convert'",
                )
            if verify:
                found = sha256_file(p)
                if found != mf.sha256:
                    raise BundleError(
                        f"{p}: SHA-256 is {found[:12]}…, but the manifest (files.{key}.sha256) expects "
                        f"{mf.sha256[:12]}…; the model does not match its manifest",
                        hint="re-create the bundle with 'leukedge convert' instead of replacing files in it",
                    )
        return bundle

    def path_of(self, key: str) -> Path:
        try:
            mf = self.manifest.files[key]
        except KeyError:
            have = ", ".join(sorted(self.manifest.files)) or "none"
            raise BundleError(
                f"{self.root}: the bundle has no '{key}' model (it has: {have})",
                hint="re-convert with 'leukedge convert' to add it, or choose another --precision/--backend",
            ) from None
        p = Path(mf.path)
        if p.is_absolute() or ".." in p.parts:
            raise BundleError(
                f"{self.root}: manifest files.{key}.path {mf.path!r} must be a plain name inside the bundle"
            )
        return self.root / p

    def has(self, key: str) -> bool:
        return key in self.manifest.files

    @property
    def model_hash(self) -> str:
        """Identity of the model: the SHA-256 of its FP32 ONNX (or of the first file listed)."""
        mf = self.manifest.files.get("onnx_fp32") or next(iter(self.manifest.files.values()))
        return mf.sha256

    @property
    def short_hash(self) -> str:
        return self.model_hash[:12]

    def __repr__(self) -> str:
        return f"Bundle({str(self.root)!r}, model={self.manifest.name}, hash={self.short_hash})"


def write_bundle(root: str | os.PathLike[str], manifest: Manifest, files: dict[str, str]) -> Bundle:
    """Write ``manifest.json`` for model files already in ``root``; ``files`` maps key -> file name.

    Hashes are computed here, so a manifest never describes a file it has not seen.
    """
    r = Path(root)
    entries = {key: ModelFile(path=name, sha256=sha256_file(r / name)) for key, name in files.items()}
    final = replace(manifest, files=entries)
    tmp = r / (MANIFEST_NAME + ".tmp")
    tmp.write_text(final.to_json(), encoding="utf-8")
    os.replace(tmp, r / MANIFEST_NAME)  # atomic: a reader never sees half a manifest
    return Bundle(r, final)
