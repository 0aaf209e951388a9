"""Propagators hand output feedback to parameters; the built-in one is ``"default"``."""

from __future__ import annotations

from typing import Any

from graphopt.feedback.feedback import Feedback
from graphopt.graph.node import Node, Param
from graphopt.graph.walk import Subgraph
from graphopt.plugins.manager import hookimpl


class ParamFeedback:
    """One feedback received by a parameter: what was said, about which output, across what.

    ``subgraph`` is shared by reference among every parameter of one ``backward`` call; the
    default propagator gives them all the same ``ParamFeedback``, so treat it as read-only.
    """

    __slots__ = ("feedback", "output", "subgraph")

    def __init__(self, feedback: Feedback, output: Node, subgraph: Subgraph) -> None:
        self.feedback = feedback
        self.output = output
        self.subgraph = subgraph

    def __repr__(self) -> str:
        return f"ParamFeedback({self.feedback.describe()!r}, output={self.output.label})"


class OutputFeedbackPropagator:
    """Gives each parameter the output's feedback and the subgraph connecting them, unchanged.

    Several feedbacks reaching one parameter accumulate; optimizers decide how to combine them.
    """

    name = "default"

    def propagate(self, subgraph: Subgraph, feedback: Feedback) -> None:
        # One object for every parameter: what each receives is the same, and a torch step
        # should not build one per tensor.
        shared = ParamFeedback(feedback, subgraph.outputs[0], subgraph)
        for target in subgraph.params:
            target.feedback.append(shared)


def received(target: Param) -> list[ParamFeedback]:
    """Feedback accumulated on ``target`` since the last ``zero_feedback``."""
    return [f for f in target.feedback if isinstance(f, ParamFeedback)]


@hookimpl
def graphopt_propagators() -> list[Any]:
    return [OutputFeedbackPropagator()]
