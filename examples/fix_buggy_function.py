"""Fix a buggy function from its unit tests' feedback with ``optoprime``.

``median`` is a trainable op whose source is a parameter. Each round runs the unit tests through
it, sends each failure (or the error it raised) back as feedback, and lets ``optoprime`` propose a
new source; a candidate that does not compile or changes the signature is refused, never run.

    GRAPHOPT_MODEL=openai/gpt-4o-mini python examples/fix_buggy_function.py   # any litellm model
    python examples/fix_buggy_function.py                                     # the embedded model

The embedded 135M model rarely finds the fix; it shows the loop running offline.
"""

from __future__ import annotations

import os

import graphopt as go


@go.op(trainable=True, timeout=2.0)
def median(values: list) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


TESTS = [([3, 1, 2], 2), ([4, 1, 3, 2], 2.5), ([5], 5), ([10, 0], 5.0), ([7, 7, 1, 9], 7.0)]


def run_tests() -> int:
    """Run every test through the traced op, sending feedback on each failure; return the passes."""
    passed = 0
    for values, expected in TESTS:
        result = median(values)
        if isinstance(result, go.Error):
            go.backward(result, f"median({values}) raised {result.value!r}; expected {expected}")
        elif result.value == expected:
            passed += 1
        else:
            go.backward(result, f"median({values}) returned {result.value!r}; expected {expected}")
    return passed


def main(rounds: int = 3) -> None:
    model = os.environ.get("GRAPHOPT_MODEL") or "local/smollm2"
    hosted = model != "local/smollm2"
    opt = go.optimizer("optoprime", [median], llm=model, memory=2,
                       max_tokens=600 if hosted else 200, max_prompt_tokens=3_000 if hosted else 1_200,
                       objective="Make median() pass every unit test: the middle value of the "
                                 "sorted list, or the mean of the two middle values.")
    for number in range(1, rounds + 1):
        opt.zero_feedback()
        passed = run_tests()
        print(f"round {number}: {passed}/{len(TESTS)} tests pass")
        if passed == len(TESTS):
            break
        committed = opt.step()
        if committed:
            print("new source:\n" + committed[opt.param_names[median.code]])
        else:
            print(f"unchanged: {opt.last_step['reason']}")
    else:
        opt.zero_feedback()
        print(f"final: {run_tests()}/{len(TESTS)} tests pass")
    print(f"model calls: {go.llm.usage_ledger().by_tag().get('optoprime')}")


if __name__ == "__main__":
    main()
