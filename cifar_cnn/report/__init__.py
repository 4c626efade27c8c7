"""What is measured, written down: metrics, plots and model cards.

- `metrics`: accuracy, top-k, precision/recall/F1, confusion, calibration, ensembles; tables.
- `plots`: learning curves, confusion matrix, per-class bars, reliability, corruptions.
- `mistakes`: the most confident mistakes, as a gallery with their Grad-CAMs.
- `model_card`: README.md for a model or ensemble folder, from `templates/`.
"""
