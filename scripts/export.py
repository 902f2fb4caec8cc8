"""Export a model to safetensors (+ JSON sidecar) and ONNX with dynamic batch/height/width.

Usage: python scripts/export.py -opt OPTION.yml --output DIR [--formats safetensors,onnx] [--opset N]  (see --help)
"""

from rssr_apps.cli import export

if __name__ == '__main__':
    export()
