"""The model bundle: a folder holding ``manifest.json`` and the model files it names.

``Bundle.load`` validates the manifest, checks that every file it names is
there and (by default) that its SHA-256 matches, so a runtime never serves a
model other than the one the manifest describes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from leukedge.errors import BundleError
from leukedge.manifest import Manifest, ModelFile
from leukedge.onnx_files import OnnxParseError, external_data_files, is_onnx

MANIFEST_NAME = "manifest.json"
REFERENCE_BUNDLE = Path(__file__).parent / "models" / "reference"
# The precisions a runtime can ask for and the manifest file key that serves each.
PRECISION_FILES = {"fp32": "onnx_fp32", "fp16": "onnx_fp32", "int8": "onnx_int8"}
# Manifest 'files' key of an external data file: "<the model's key>:<location>".
EXTERNAL_SEP = ":"
# ONNX metadata key under which conversion records the model's softmax order (a JSON list).
CLASSES_KEY = "leukedge.classes"


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
        # "reference" however it arrives (str, or a Path from a CLI option): every command accepts it
        root = REFERENCE_BUNDLE if path is None or os.fspath(path) == "reference" else Path(path)
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
        bundle._check_external_data()
        return bundle

    def _check_external_data(self) -> None:
        """Every file an ONNX model reads (external weights) must be listed, so that it is hashed."""
        listed = {os.path.normpath(mf.path) for mf in self.manifest.files.values()}
        for key, mf in self.manifest.files.items():
            if not is_onnx(mf.path):
                continue
            path = self.path_of(key)
            try:
                needed = external_data_files(path)
            except OnnxParseError:
                continue  # not a protobuf: no runtime loads it (ONNX Runtime says why when asked to)
            for location in needed:
                rel = Path(location)
                target = os.path.normpath(Path(mf.path).parent / rel)
                if rel.is_absolute() or ".." in rel.parts or target not in listed:
                    raise BundleError(
                        f"{path}: the model reads its weights from {location!r}, which the manifest does not "
                        "list with a SHA-256; its weights could change without the model id changing",
                        hint="re-create the bundle with 'leukedge convert' (it lists external data files), "
                        "or add the file under 'files' with its sha256",
                    )

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
        """Identity of the model as a run uses it (SHA-256, hex).

        It covers the SHA-256 of every file the manifest lists (the ONNX models,
        their external data, the Keras file, calibration) and the manifest
        fields that decide a label (:meth:`Manifest.decision_fields`), so a
        changed weight file or an edited threshold gives another id, and
        ``--resume`` refuses to mix their rows.
        """
        return bundle_identity(self.manifest)

    @property
    def short_hash(self) -> str:
        return self.model_hash[:12]

    def content_sha256(self, key: str) -> str:
        """SHA-256 of model file ``key`` together with the external data files it reads."""
        mf = self.manifest.files[key]
        extra = [m.sha256 for k, m in sorted(self.manifest.files.items()) if k.startswith(key + EXTERNAL_SEP)]
        if not extra:
            return mf.sha256
        return hashlib.sha256("\n".join([mf.sha256, *extra]).encode()).hexdigest()

    def __repr__(self) -> str:
        return f"Bundle({str(self.root)!r}, model={self.manifest.name}, hash={self.short_hash})"


def check_trained_classes(recorded: str | None, manifest: Manifest, where: str | os.PathLike[str]) -> None:
    """Refuse a manifest whose ``classes`` differ from the order recorded inside the model file.

    ``recorded`` is the model's ``leukedge.classes`` metadata (JSON), None for
    models converted before it was written (the manifest's own check then holds).
    """
    if recorded is None:
        return
    try:
        order = json.loads(recorded)
    except json.JSONDecodeError:
        order = recorded
    if order != list(manifest.classes):
        raise BundleError(
            f"{where}: the model was trained with the output order {order}, but the manifest's 'classes' "
            f"is {list(manifest.classes)}; every label would be inverted",
            hint="restore 'classes' in manifest.json to the model's order, or re-create the bundle",
        )


def bundle_identity(manifest: Manifest) -> str:
    """The model id: SHA-256 over every listed file's SHA-256 and the label-deciding manifest fields."""
    content = {
        "files": {key: mf.sha256 for key, mf in sorted(manifest.files.items())},
        "decision": manifest.decision_fields(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _external_or_none(path: Path) -> list[str]:
    try:
        return external_data_files(path)
    except OnnxParseError:
        return []


def write_bundle(root: str | os.PathLike[str], manifest: Manifest, files: dict[str, str]) -> Bundle:
    """Write ``manifest.json`` for model files already in ``root``; ``files`` maps key -> file name.

    Hashes are computed here, so a manifest never describes a file it has not seen.  The
    external data files an ONNX model reads are listed too, as ``<key>:<location>``.
    """
    r = Path(root)
    files = dict(files)
    for key, name in list(files.items()):
        if is_onnx(name):
            for location in _external_or_none(r / name):
                files[f"{key}{EXTERNAL_SEP}{location}"] = os.path.normpath(Path(name).parent / location)
    entries = {key: ModelFile(path=name, sha256=sha256_file(r / name)) for key, name in files.items()}
    final = replace(manifest, files=entries)
    tmp = r / (MANIFEST_NAME + ".tmp")
    tmp.write_text(final.to_json(), encoding="utf-8")
    os.replace(tmp, r / MANIFEST_NAME)  # atomic: a reader never sees half a manifest
    return Bundle(r, final)
