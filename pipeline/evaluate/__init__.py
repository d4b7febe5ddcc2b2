"""EVALUATE stage: offline sample-quality metrics, placed against references, and the gate.

generator_eval   sampling models: FD, KID, precision/recall, the judge, the summary line
task_eval        image-to-image models: against their classical baseline and L1-only model
control_metrics  what the export's controls do, measured
__main__         `python -m pipeline.evaluate`: score an export outside the runner
"""

from pipeline.evaluate.generator_eval import run, validate_config

__all__ = ["run", "validate_config"]
