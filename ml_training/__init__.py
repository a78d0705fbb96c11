"""Training, evaluating and shipping the fine-tuned phone classifier. Knows nothing of Django.

Entry points for other code (the retrain command builds on these):

- :func:`ml_training.data.load_samples` / :func:`ml_training.data.samples_from_pairs` make :class:`Sample` lists;
- :func:`ml_training.splits.grouped_split` splits them so near-duplicates never straddle parts;
- :func:`ml_training.train.train_model` trains and writes a model directory;
- :func:`ml_training.evaluate.evaluate_classifier` measures any loaded classifier on samples.
"""

from ml_training.data import Sample, load_samples, samples_from_pairs

__all__ = ["Sample", "load_samples", "samples_from_pairs"]
