"""How many classes a model conditions on: the one rule train, evaluate and export share.

0                                 for an unconditional model;
num_classes                       when > 0 (config.model.num_classes, or what an export records);
len(<ingest>/labels.json)         else, the ingest stage's class names;
max(eval_labels) + 1              else, for callers that pass labelled eval records (evaluate);
an error naming labels.json       otherwise: RecordsNotFoundError (a FileNotFoundError and a
                                  ValueError) when it is missing, DataError (a ValueError) when
                                  it is empty or not a list.
"""

import pathlib

import numpy as np

from gan_keras.data import records


def resolve_num_classes(
    ingest_dir, *, conditional: bool, num_classes: int = 0, eval_labels: np.ndarray | None = None
) -> int:
    """0 for unconditional models, else the number of classes to condition on (rule above)."""
    if not conditional:
        return 0
    if num_classes and num_classes > 0:
        return int(num_classes)
    path = pathlib.Path(ingest_dir) / records.LABELS_FILE
    names = records.read_label_names(ingest_dir)  # DataError unless a list
    if names:
        return len(names)
    if eval_labels is not None and eval_labels.size and eval_labels.min() >= 0:
        return int(eval_labels.max()) + 1
    fix = "set model.num_classes or use an unconditional model"
    if not path.exists():
        raise records.RecordsNotFoundError(
            f"{path} is missing: a conditional model (config.model.conditional=True) with "
            f"config.model.num_classes=0 takes its classes from the ingest stage; {fix}"
        )
    raise records.DataError(
        f"{path} must be a non-empty list of class names for a conditional model "
        f"(config.model.conditional=True, config.model.num_classes=0), got []; {fix}"
    )
