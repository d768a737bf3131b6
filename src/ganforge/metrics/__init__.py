"""Metrics: how good, how diverse and how original generated images are.

See :mod:`ganforge.metrics.evaluate` for the registry and :mod:`ganforge.metrics.features`
for the feature extractors.
"""
