"""graphopt-gradients: ``greater`` (gradient-guided prompt search through the embedded model),
``mezo`` (zeroth-order, forward passes only) and ``lion`` (sign momentum) for graphopt params."""

from graphopt_gradients.greater import Greater
from graphopt_gradients.lion import Lion, lion
from graphopt_gradients.lora import LoRA, add_lora
from graphopt_gradients.mezo import MeZO

__all__ = ["Greater", "Lion", "LoRA", "MeZO", "add_lora", "lion"]
