"""graphopt-promptsearch: prompt search optimizers for graphopt.

``mcts`` (PromptAgent tree search), ``spo`` (pairwise, reference-free), ``apohf`` (preference
feedback from a person or a judge) and ``mapelites`` (a quality-diversity archive).
"""

from graphopt_promptsearch.apohf import APOHF
from graphopt_promptsearch.judge import cli_judge, compare, llm_judge, preference_of
from graphopt_promptsearch.mapelites import Descriptor, MAPElites, keyword_labels, length_bins
from graphopt_promptsearch.mcts import MCTS
from graphopt_promptsearch.preference import PreferenceModel
from graphopt_promptsearch.spo import SPO

__all__ = ["APOHF", "Descriptor", "MAPElites", "MCTS", "PreferenceModel", "SPO", "cli_judge",
           "compare", "keyword_labels", "length_bins", "llm_judge", "preference_of"]
