"""The subcommand registry: name → where it lives and what it needs.

Listing commands (``leukedge --help``) reads only this table; a command's
module is imported when it is called.  A command whose extra is missing still
lists, and when called says which extra installs it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandSpec:
    target: str  # "module:attribute" of a click command
    summary: str  # one line for --help
    requires: tuple[str, ...] = ()  # keys of leukedge.extras.DEPENDENCIES
    extra: str | None = None  # the pip extra that brings them


COMMANDS: dict[str, CommandSpec] = {
    "doctor": CommandSpec("leukedge.cli.doctor:doctor", "Report what is usable on this machine, and why not."),
    "segment": CommandSpec("leukedge.cli.segment:segment", "Find white cells in smear images; write boxes and crops."),
    "train": CommandSpec(
        "leukedge.trainer.cli:train", "Train the VGG13 classifier on C-NMC-style folders.", ("tensorflow",), "train"
    ),
    "cv": CommandSpec(
        "leukedge.trainer.cli:cv",
        "Cross-validate a training recipe by subject, beside the baselines.",
        ("tensorflow",),
        "train",
    ),
    "evaluate": CommandSpec(
        "leukedge.trainer.cli:evaluate", "Evaluate a model on labelled cells, by subject, with a report."
    ),
    "convert": CommandSpec(
        "leukedge.converters.cli:convert",
        "Convert model.h5 to a bundle: ONNX, INT8 with an acceptance gate, TensorRT.",
        ("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
        "convert",
    ),
    "screen": CommandSpec("leukedge.device.cli:screen", "Screen a live source (camera, stream, files) in real time."),
    "score": CommandSpec(
        "leukedge.device.score_cli:score", "Score folders of cells or smear images to a results file."
    ),
    "report": CommandSpec("leukedge.report.cli:report", "Make a slide report (HTML) from a results file."),
    "bench": CommandSpec("leukedge.device.bench_cli:bench", "Measure classifier cells/s for every usable backend."),
    "demo": CommandSpec(
        "leukedge.device.demo:demo", "Screen a synthetic slide with the built-in model for a few seconds."
    ),
}
