"""Training, evaluating and shipping phone classifiers. Knows nothing of Django.

``python -m ml_training train`` trains the scene detector (:mod:`ml_training.scene`, recipe in
:mod:`ml_training.scene.config`, :func:`ml_training.scene.train.train_scene_model` for other code);
``python -m ml_training evaluate`` measures any model version (:mod:`ml_training.evaluate`).

Shared pieces:

- :func:`ml_training.data.load_samples` / :func:`ml_training.data.samples_from_pairs` make :class:`Sample` lists;
- :func:`ml_training.splits.group_ids` / :func:`ml_training.splits.assign_parts` keep near-duplicates and declared
  groups in one fold;
- :mod:`ml_training.metrics` computes accuracy, recall, ROC-AUC, ECE;
- :func:`ml_training.evaluate.evaluate_classifier` measures any loaded classifier on samples (any kind).

The trainer of the older fine-tuned whole-picture versions (still shipped for rollback, loadable by
:mod:`inference.finetuned`) was retired with the scene model; docs/experiments.md says what it taught.
"""

from ml_training.data import Sample, load_samples, samples_from_pairs

__all__ = ["Sample", "load_samples", "samples_from_pairs"]
