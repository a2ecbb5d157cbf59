"""Where weights come from and how the pipeline is assembled: hub or local diffusers folder,
GGUF transformer files, and the offline tiny random-weight model."""

from .loader import LoadedModel, ModelInfo, load_pipeline

__all__ = ["LoadedModel", "ModelInfo", "load_pipeline"]
