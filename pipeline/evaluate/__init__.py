"""EVALUATE stage: offline sample-quality metrics, placed against references, and the gate.

generator_eval    the stage for sampling models: config check, scores, controls, gate, metrics.json
sample_fns        what is scored: a Keras generator or an export as seed -> uint8 images
scoring           FD, KID, precision/recall, the judge, the real floor and noise ceiling
summary           the one-line quality summary placing the model between references
tensorboard_logs  the stage's TensorBoard scalars and sample grid
task_eval         image-to-image models: against their classical baseline and L1-only model
control_metrics   what the export's controls do, measured
control_plots     the controls' pictures: truncation trade-off, nearest neighbours
__main__          `python -m pipeline.evaluate`: score an export outside the runner
"""

from pipeline.evaluate.generator_eval import run, validate_config

__all__ = ["run", "validate_config"]
