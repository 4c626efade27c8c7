"""How far to trust a prediction: beyond accuracy.

- `calibration`: expected calibration error, reliability bins, temperature scaling.
- `ood`: out-of-distribution scores (top probability, energy), detectors fitted on validation
  data, and the outlier check behind the app's warning.
- `corruptions`: nine common corruptions at five severities, in the spirit of CIFAR-10-C.
"""
