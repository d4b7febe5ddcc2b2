"""TRAIN stage: the GAN under a tf.distribute strategy, fed by the ingest stage's records.

loop              validation, strategies, building the GAN, resume policy and the loop
checkpoints       (pipeline.checkpoints) which generator a workdir holds, for every stage
in_training_eval  `train.eval_every`: scores during training, the best checkpoint
fine_tune         `train.init_from` and `train.freeze_d_layers`
"""

from pipeline.train.loop import is_chief_process, prepare, run, validate_config

__all__ = ["is_chief_process", "prepare", "run", "validate_config"]
