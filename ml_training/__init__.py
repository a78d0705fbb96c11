"""Training, evaluating and shipping phone classifiers. Knows nothing of Django.

``python -m ml_training train`` trains the scene detector (:mod:`ml_training.scene`, recipe in
:mod:`ml_training.scene.config`, :func:`ml_training.scene.train.train_scene_model` for other code);
``python -m ml_training evaluate`` measures any model version (:mod:`ml_training.evaluate`).

Entry points of the fine-tuned trainer, kept while ``manage.py retrain`` still uses it:

- :func:`ml_training.data.load_samples` / :func:`ml_training.data.samples_from_pairs` make :class:`Sample` lists;
- :func:`ml_training.splits.grouped_split` splits them so near-duplicates never straddle parts;
- :func:`ml_training.train.train_model` trains and writes a model directory;
- :func:`ml_training.evaluate.evaluate_classifier` measures any loaded classifier on samples (any kind).
"""

from ml_training.data import Sample, load_samples, samples_from_pairs

__all__ = ["Sample", "load_samples", "samples_from_pairs"]
