"""EXPORT stage: the trained generator as a SavedModel in TF Serving's layout, with its card.

export_stage  the stage: gate, signatures, directions, the version directory
model_card    assets.extra/model_card.md
"""

from pipeline.export.export_stage import run, validate_config

__all__ = ["run", "validate_config"]
