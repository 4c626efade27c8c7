"""Export a classifier for serving outside Python.

>>> from cifar_cnn.export import export_onnx, export_saved_model, export_tflite
>>> export_saved_model(classifier, "serving/cifar10/1")       # TF Serving's version folder
>>> export_tflite(classifier, "cifar10-int8.tflite", quantization="int8",
...               representative_images=data.x_train[:500])
>>> export_onnx(classifier, "cifar10.onnx")                   # onnxruntime, and others

- `saved_model`: TensorFlow Serving, with a signature for raw images and one for image files.
- `tflite`: TFLite (float32, float16, int8) and `TFLiteClassifier`, run with LiteRT.
- `onnx`: ONNX via tf2onnx, and `ONNXClassifier`, run with onnxruntime.
- `graph`: what the exported graphs share (calibration, decoding files).
"""

from cifar_cnn.export.onnx import ONNXClassifier, export_onnx
from cifar_cnn.export.saved_model import export_saved_model
from cifar_cnn.export.tflite import QUANTIZATIONS, TFLiteClassifier, export_tflite

FORMATS = ("saved_model", "tflite", "onnx")

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "ONNXClassifier",
    "TFLiteClassifier",
    "export_onnx",
    "export_saved_model",
    "export_tflite",
]
