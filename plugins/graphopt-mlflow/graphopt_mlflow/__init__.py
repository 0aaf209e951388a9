"""Each graphopt run an MLflow run, as a graphopt observer plugin."""

from graphopt_mlflow.observer import MlflowObserver

__all__ = ["MlflowObserver"]
