"""The feedback layer: ``Feedback``, ``backward`` and propagators."""

from graphopt.feedback.backward import backward
from graphopt.feedback.feedback import ErrorInfo, Feedback
from graphopt.feedback.propagators import OutputFeedbackPropagator, ParamFeedback, received

__all__ = ["ErrorInfo", "Feedback", "OutputFeedbackPropagator", "ParamFeedback", "backward", "received"]
