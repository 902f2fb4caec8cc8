"""What makes an exported ONNX file run on the onnxruntime releases users have (back to 1.16).

* the IR version is the lowest one the opset needs (PyTorch's exporter stamps
  the newest, IR 10, which onnxruntime < 1.18 refuses): :func:`stamp_lowest_ir`;
* no float64 computation (onnxruntime 1.18-1.28 have no float64 ``Cos``/``Sin``
  kernels, and float32 is what the network computes): :func:`float64_nodes`;
* an opset newer than the installed onnxruntime implements is refused by name
  before loading (:func:`runtime_refusal`, used by ``rssr-infer --onnx``).
"""

import onnx
from onnx import TensorProto, helper

# The first onnxruntime release that implements each ONNX opset (onnxruntime's compatibility table).
MIN_ONNXRUNTIME = {17: (1, 13), 18: (1, 14), 19: (1, 15), 20: (1, 17), 21: (1, 18), 22: (1, 20), 23: (1, 22)}
PORTABLE_OPSET = 19  # the newest opset onnxruntime 1.16 (what QGIS Deepness pins <= 1.17) runs


def opset_of(model):
    """The default-domain (``ai.onnx``) opset of a ModelProto."""
    return next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)


def lowest_ir_version(opset):
    """The lowest ONNX IR version whose release defines ``opset`` (onnx.helper's version table)."""
    return min(ir for _, ir, ai_onnx, *_ in helper.VERSION_TABLE if ai_onnx >= opset)


def stamp_lowest_ir(model):
    """Set ``model.ir_version`` to the lowest one its opset needs (in place; returns ``model``).

    The exporter stamps the IR version of the installed onnx package, which older
    runtimes refuse although the file uses nothing newer than its opset's IR.
    """
    model.ir_version = min(model.ir_version, lowest_ir_version(opset_of(model)))
    return model


def float64_nodes(model):
    """Names (or op types) of the nodes of ``model`` that compute a float64 output (shape inference).

    Casts to float64 count; constants and initializers do not (they compute nothing).
    """
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.output)}
    found = []
    for node in inferred.graph.node:
        if node.op_type == 'Constant':
            continue
        if any(types.get(out) == TensorProto.DOUBLE for out in node.output):
            found.append(node.name or node.op_type)
    return found


def runtime_refusal(model, version):
    """A one-line reason why onnxruntime ``version`` (str) cannot run ``model``, or None when it can.

    Args:
        model (onnx.ModelProto): The model (its opset and IR version are read).
        version (str): onnxruntime's ``__version__``.
    """
    opset = opset_of(model)
    installed = tuple(int(p) for p in version.split('.')[:2] if p.isdigit())
    needed = MIN_ONNXRUNTIME.get(opset)
    if needed and installed < needed:
        return (
            f'opset {opset} needs onnxruntime >= {needed[0]}.{needed[1]}, this is onnxruntime {version}: '
            f'upgrade it, or re-export with --opset {PORTABLE_OPSET} or lower'
        )
    return None
