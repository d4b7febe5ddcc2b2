"""TRAIN stage: the GAN under a tf.distribute strategy, fed by the ingest stage's records.

validation        `validate_config`: the checks of the model, train and task sections
strategies        `train.strategy`, which process is the chief, mixed precision
build             the compiled GAN and the fixed inputs of its sample grids
resume            `prepare`: resume a workdir's checkpoints, move them aside or refuse
loop              `run`: the training loop, logging, samples and checkpoints
checkpoints       (pipeline.checkpoints) which generator a workdir holds, for every stage
in_training_eval  `train.eval_every`: scores during training, the best checkpoint
fine_tune         `train.init_from` and `train.freeze_d_layers`

The stage's hooks for the runner (pipeline.stages): `validate_config(config)`,
`run(context)`, `prepare(context, previous, current)` (resume or refuse) and
`is_chief_process(config)`.
"""

from pipeline.train.loop import run
from pipeline.train.resume import prepare
from pipeline.train.strategies import is_chief_process
from pipeline.train.validation import validate_config

__all__ = ["is_chief_process", "prepare", "run", "validate_config"]
