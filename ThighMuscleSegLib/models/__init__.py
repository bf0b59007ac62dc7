"""Networks (2D / 3D U-Net), their settings, and the model file that carries both.

The nets (``unet``) are imported when first asked for: they need torch, which reading a model
file's settings and running ONNX Runtime inference do not.
"""

from .model_file import (FORMAT_NAME, FORMAT_VERSION, MODEL_SUFFIX, Model, ModelFileError, file_sha256,
                         load_model, random_model, save_model)
from .settings import ARCHITECTURES, VIEW_AXES, VIEWS_25D, VOLUME_VIEW, ModelSettings, window_hu

_NETS = ("UNet", "build_net", "count_parameters")


def __getattr__(name: str):
    if name in _NETS:
        from . import unet

        return getattr(unet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ARCHITECTURES", "FORMAT_NAME", "FORMAT_VERSION", "MODEL_SUFFIX", "Model", "ModelFileError",
           "ModelSettings", "UNet", "VIEWS_25D", "VIEW_AXES", "VOLUME_VIEW", "build_net", "count_parameters",
           "file_sha256", "load_model", "random_model", "save_model", "window_hu"]
