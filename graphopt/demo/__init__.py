"""The main job: a hybrid review-triage workflow optimized offline on the embedded model."""

from graphopt.demo.run import DemoSummary, run_demo
from graphopt.demo.workflow import ReviewTriage, confident_accuracy

__all__ = ["DemoSummary", "ReviewTriage", "confident_accuracy", "run_demo"]
