"""Keras → ONNX → INT8 Q/DQ → TensorRT, with the acceptance gate (needs the ``convert`` extra)."""
