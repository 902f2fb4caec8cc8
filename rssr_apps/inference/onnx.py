"""An exported ONNX model as a network for :class:`~rssr_utils.tiling.TiledSR` (``rssr-infer --onnx``)."""

import json

import numpy as np
import torch


class OnnxSR:
    """Runs an ONNX super-resolution model through onnxruntime, called like a PyTorch network.

    Args:
        path (str): ``model.onnx`` written by ``rssr-export`` (or any model mapping float32
            (B, 3, H, W) in [0, 1] to (B, 3, s*H, s*W)).
        device (str): 'cpu', or 'cuda' to use onnxruntime's CUDA provider when it is installed
            (CPU otherwise, with a note in ``providers``).
    """

    def __init__(self, path, device='cpu'):
        from rssr_apps.onnx_export import onnx_session

        refusal = runtime_refusal_of(path)
        if refusal:
            raise ValueError(f'{path}: {refusal}.')
        try:
            self.session = onnx_session(path, device)
        except Exception as error:  # onnxruntime raises its own exception types
            raise ValueError(f'{path}: not a loadable ONNX model ({error}).') from error
        self.input_name = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k: json.loads(v) for k, v in meta.items() if _is_json(v)}
        self.upscale = self.metadata.get('scale_factor')
        self.min_size = self.metadata.get('min_input_size', 1)

    def __call__(self, x):
        """x: (B, 3, H, W) float tensor in [0, 1] -> (B, 3, s*H, s*W) float32 CPU tensor."""
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(f'the ONNX model needs sides of at least {self.min_size} pixels, got {h}x{w}.')
        batch = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: batch})[0])


def runtime_refusal_of(path):
    """Why the installed onnxruntime cannot run the ONNX file ``path`` (its opset), or None."""
    import onnx
    import onnxruntime

    from rssr_apps.onnx_compat import runtime_refusal

    try:
        model = onnx.load(path, load_external_data=False)
    except Exception:  # not ONNX: the session's own error says so
        return None
    return runtime_refusal(model, onnxruntime.__version__)


def _is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
