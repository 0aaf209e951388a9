"""The object graphopt's plugin manager finds through the ``graphopt`` entry point ``mlflow``."""

from __future__ import annotations

from graphopt_mlflow.observer import MlflowObserver

observer = MlflowObserver()
"""On when ``MLFLOW_TRACKING_URI`` or ``GRAPHOPT_MLFLOW=1`` is set, or an MLflow run is active."""
