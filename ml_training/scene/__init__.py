"""Training the scene model (``inference.scene_network``): per-cell phone scores and boxes, trained with boxes.

One concern a module, torchvision-references style: ``config`` (the recipe: every knob, its meaning and its
rule), ``data`` (labelled pictures and their boxes), ``views`` (augmented views, copy-paste of real phones, the
frozen-trunk feature cache), ``targets`` (what each grid cell should say), ``engine`` (the training loop and
scoring), ``crossval`` (grouped folds, out-of-fold scores), ``decision`` (calibration, threshold, unsure band),
``figures`` (per source and box hits), ``model_writer`` (the model directory), ``train`` (the story;
``python -m ml_training train``).
"""
