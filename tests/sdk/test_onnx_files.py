"""The external-data walker finds every file an ONNX model reads, as the onnx package itself does."""

from __future__ import annotations

import numpy as np
import pytest

from leukedge.onnx_files import _MESSAGES, _TENSOR_EXTERNAL_DATA, OnnxParseError, external_data_files

onnx = pytest.importorskip("onnx")


def _holds_tensors(desc, seen=None) -> bool:
    """Whether a message type can contain a TensorProto at any depth."""
    seen = set() if seen is None else seen
    if desc.full_name == "onnx.TensorProto":
        return True
    if desc.full_name in seen:
        return False
    seen.add(desc.full_name)
    return any(f.message_type is not None and _holds_tensors(f.message_type, seen) for f in desc.fields)


def test_field_numbers_are_onnx_own_and_every_tensor_holder_is_walked() -> None:
    """Walk onnx's descriptors from ModelProto: every field that can lead to a tensor is in the walker's map."""
    names = {
        "ModelProto": "model",
        "FunctionProto": "function",
        "GraphProto": "graph",
        "NodeProto": "node",
        "AttributeProto": "attribute",
        "SparseTensorProto": "sparse",
        "TensorProto": "tensor",
        "TrainingInfoProto": "training",
    }
    todo, done = [onnx.ModelProto.DESCRIPTOR], set()
    while todo:
        desc = todo.pop()
        if desc.name in done or desc.name == "TensorProto":
            continue
        done.add(desc.name)
        for f in desc.fields:
            if f.message_type is None or not _holds_tensors(f.message_type):
                continue
            assert desc.name in names, desc.name
            walked = _MESSAGES.get(names[desc.name], {})
            assert walked.get(f.number) == names.get(f.message_type.name), (desc.name, f.name, f.number)
            todo.append(f.message_type)
    assert onnx.TensorProto.DESCRIPTOR.fields_by_name["external_data"].number == _TENSOR_EXTERNAL_DATA


def _model_with_external_data(folder, *, in_subgraph: bool) -> str:
    from onnx import TensorProto, helper, numpy_helper

    big = numpy_helper.from_array(np.arange(4096, dtype=np.float32).reshape(64, 64), "w")
    const = numpy_helper.from_array(np.ones((64, 64), np.float32), "c")
    then = helper.make_graph(
        [helper.make_node("Constant", [], ["t_out"], value=const)],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [64, 64])],
    )
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    if in_subgraph:
        nodes.append(helper.make_node("If", ["cond"], ["z"], then_branch=then, else_branch=then))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])]
        + ([helper.make_tensor_value_info("cond", TensorProto.BOOL, [])] if in_subgraph else []),
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])],
        initializer=[big],
    )
    model = helper.make_model(graph)
    path = folder / "m.onnx"
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(model, all_tensors_to_one_file=False, size_threshold=0, convert_attribute=True)
    onnx.save_model(model, str(path))
    return str(path)


@pytest.mark.parametrize("in_subgraph", [False, True])
def test_walker_finds_what_onnx_finds(tmp_path, in_subgraph: bool) -> None:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    path = _model_with_external_data(tmp_path, in_subgraph=in_subgraph)
    model = onnx.load(path, load_external_data=False)
    expected = sorted(
        {
            e.value
            for t in _get_all_tensors(model)
            if uses_external_data(t)
            for e in t.external_data
            if e.key == "location"
        }
    )
    assert expected and external_data_files(path) == expected
    if in_subgraph:
        assert len(expected) == 2  # the initializer and the If branch's Constant


def test_a_model_without_external_data_and_garbage(tmp_path) -> None:
    from leukedge.bundle import REFERENCE_BUNDLE

    assert external_data_files(REFERENCE_BUNDLE / "model.onnx") == []
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff" * 20)
    with pytest.raises(OnnxParseError, match="not a readable ONNX model"):
        external_data_files(junk)
