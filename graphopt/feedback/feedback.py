"""``Feedback``: what a user (or a metric) says about an output — text, score, loss or error."""

from __future__ import annotations

import math
import traceback
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from graphopt.graph.kinds import is_tensor

if TYPE_CHECKING:
    import torch


class ErrorInfo(BaseModel):
    """An exception, as text: its type, message and formatted traceback."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, formatted: str | None = None) -> ErrorInfo:
        text = formatted if formatted is not None else "".join(traceback.format_exception(exc)).rstrip()
        return cls(type=type(exc).__name__, message=str(exc), traceback=text)


class Feedback(BaseModel):
    """Any of: a critique (``text``), a ``score`` (higher is better), a torch ``loss``, an ``error``,
    named ``metrics`` (cost, latency, … for several-objective optimizers), and a ``preference``
    between two outputs compared side by side (1: the first, 0: the second, 0.5: a tie).

    Several may be given at once; at least one must be. ``Feedback.coerce`` builds one from a
    string, a number, a tensor, an exception or a dict.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    text: str | None = None
    score: float | None = None
    loss: Any = None
    error: ErrorInfo | None = None
    metrics: dict[str, float] | None = None
    preference: float | None = None

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, loss: Any) -> Any:
        if loss is None:
            return None
        if not is_tensor(loss):
            raise ValueError(f"loss must be a torch.Tensor, got {type(loss).__name__}")
        if loss.numel() != 1:
            raise ValueError(f"loss must be a scalar tensor, got shape {tuple(loss.shape)}")
        return loss

    @field_validator("preference")
    @classmethod
    def _check_preference(cls, preference: float | None) -> float | None:
        if preference is not None and not 0.0 <= preference <= 1.0:  # NaN fails this too
            raise ValueError(f"preference must be in [0, 1] (1: the first output of the pair is "
                             f"preferred, 0: the second, 0.5: a tie), got {preference!r}")
        return preference

    @model_validator(mode="after")
    def _not_empty(self) -> Feedback:
        if (self.text is None and self.score is None and self.loss is None and self.error is None
                and not self.metrics and self.preference is None):
            raise ValueError("feedback needs at least one of text, score, loss, error, metrics, "
                             "preference")
        return self

    @classmethod
    def of_loss(cls, loss: Any) -> Feedback:
        """Feedback holding just ``loss``, a scalar tensor: ``Feedback(loss=loss)`` without
        pydantic's validation pass, which would check again what this checks (every torch step
        builds one)."""
        if cls is not Feedback or not is_tensor(loss) or loss.numel() != 1:
            return cls(loss=loss)  # a subclass's validators run; a wrong loss gets pydantic's error
        # What pydantic's ``model_construct`` sets, written directly through the slots'
        # descriptors (frozen models refuse their own __setattr__): its own loop costs more.
        feedback = object.__new__(cls)
        fields = _NO_FIELDS.copy()
        fields["loss"] = loss
        _set_dict(feedback, fields)
        _set_fields_set(feedback, {"loss"})
        _set_extra(feedback, None)
        _set_private(feedback, None)
        return feedback

    @classmethod
    def coerce(cls, value: Any) -> Feedback:
        """``value`` as feedback: str → text, number → score, tensor → loss, exception → error."""
        if isinstance(value, Feedback):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, bool):
            return cls(score=float(value))
        if isinstance(value, (int, float)):
            return cls(score=float(value))
        if is_tensor(value):
            return cls.of_loss(value)
        if isinstance(value, BaseException):
            return cls(error=ErrorInfo.from_exception(value))
        if isinstance(value, dict):
            return cls(**value)
        raise TypeError(f"cannot make feedback from {type(value).__name__}; expected Feedback, "
                        f"str, number, tensor, exception or dict")

    def non_finite(self) -> str | None:
        """Which number is NaN or infinite (``"score=nan"``), or ``None`` when all are finite."""
        if self.score is not None and not math.isfinite(self.score):
            return f"score={self.score}"
        if self.loss is not None and not bool(self.loss.detach().isfinite().all()):
            return f"loss={float(self.loss.detach())}"
        for name, value in (self.metrics or {}).items():
            if not math.isfinite(value):
                return f"metrics[{name!r}]={value}"
        return None

    def describe(self) -> str:
        """One short human-readable line."""
        parts = []
        if self.score is not None:
            parts.append(f"score={self.score:g}")
        if self.loss is not None:
            parts.append(f"loss={float(self.loss.detach()):g}")
        if self.metrics:
            parts.extend(f"{name}={value:g}" for name, value in sorted(self.metrics.items()))
        if self.preference is not None:
            parts.append(f"preference={self.preference:g}")
        if self.error is not None:
            parts.append(f"error={self.error.type}: {self.error.message}")
        if self.text is not None:
            parts.append(self.text)
        return "; ".join(parts)


_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[slot].__set__
    for slot in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"))
_NO_FIELDS: dict[str, Any] = {name: field.default for name, field in Feedback.model_fields.items()}
