"""Multi-operand arithmetic: the synthetic testbed for hierarchical decomposition.

"What is 3+5+2+7?" decomposes as a tree, (3+5)+(2+7), into sub-problems a node can each solve
alone; the theory behind NeuroMAS predicts that a network gains exactly on tasks shaped like
this (DESIGN.md section 1). The knobs set the shape of the tree:

- `operands`: numbers per expression; a pair [lo, hi] draws the count uniformly per example.
- `train_operands`: the same for the train split alone (default: as `operands`). A curriculum:
  train on 2-4 numbers, where sampled rewards are not all zero, and test on exactly 4.
- `digits`: digits per number (1 means 0-9, d > 1 means 10^(d-1) to 10^d - 1).
- `min_value`: the smallest number drawn, inside that range (default: its bottom). 1 with one
  digit keeps 0 out, where a zero would let a part be skipped: in "(0*9)+(3*1)" the answer is
  one product, so a readout that copies a message is right without combining anything.
- `max_value`: the largest number drawn, inside that range (default: its top). 2-6 keeps a
  sum of two products under 73, where 1-9 asks the combining step for sums up to 162.
- `operators`: which of "+-*" may appear, drawn uniformly per position.
- `top_operators`: the operators that may join the two halves of the numbers, drawn like
  `operators`; default: as `operators`. "(3*5)+(2*7)", a sum of products, is `operators: "*"`,
  `top_operators: "+"`, `depth: 2`: a sum whose parts are each a different sub-problem. With
  `depth: 1` the same question is flat, "3*5+2*7": the precedence alone says where it splits,
  and nothing in it shows the two products to work out first.
- `min_result`: redraw any expression with a value or sub-result below it. 0 asks "(9-3)+(7-5)"
  and not "(3-7)+(2-5)": a small model subtracts a smaller number far more often than it gets a
  negative result right. 1 also keeps out a part that is 0, "(5-5)+(9-3)", whose answer is the
  other part, so that a readout that copies one message is never right (with 0 it was, on 19% of
  the parts, and a trained network learned just that).
- `answer_not_shown`: redraw any expression whose value is one of its numbers. In sums of two
  differences of 1-9, "(6 - 5) + (6 - 1)" is 6, the first number: 42% of such questions have an
  answer they show, and a trained single agent learned to answer the first number (19.5% of
  the test) instead of subtracting.
- `spaced`: write the operators with spaces, "(9 - 3) + (7 - 5)": written "9-3" the model
  reads a range or a date ("9-7 is a 9-hour clock"; the untrained SmolLM2-135M answers "What is
  9-3?" right on 10% of differences of 1-digit numbers, "What is 9 - 3?" on 65%).
- `depth`: 1 gives a flat expression evaluated with the usual precedence ("3+5*2+7"); 2 or more
  split it into balanced halves in parentheses, "(3+5)+(2+7)", down to `depth` levels. Past
  log2(operands) levels there is nothing left to split, so a deeper setting changes nothing.

Each example's meta holds its operands, operators and the evaluation tree with every
sub-result, so an analysis can ask whether a hidden node's message contains a partial result.

The test set is drawn first and depends only on the seed and the knobs; it holds distinct
expressions. Train is drawn from a second stream with every test expression excluded; it may
repeat an expression (a small space such as two 1-digit numbers has only 100), because a
trainer samples with replacement anyway and refusing repeats would skew a curriculum away from
its short expressions.
"""

from __future__ import annotations

import random
from typing import Any

from neuromas.errors import NeuromasError
from neuromas.tasks import rewards
from neuromas.tasks.base import Example, SplitTask, consecutive_runs
from neuromas.tasks.registry import register

Tree = int | dict[str, Any]  # a leaf number, or {"expr", "value", "children"}
OPERATORS = "+-*"


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _eval_flat(numbers: list[int], ops: list[str]) -> int:
    """Left to right with * before + and -, as written (no eval of generated text)."""
    terms, signs = [numbers[0]], []
    for op, n in zip(ops, numbers[1:], strict=True):
        if op == "*":
            terms[-1] *= n
        else:
            signs.append(op)
            terms.append(n)
    total = terms[0]
    for op, term in zip(signs, terms[1:], strict=True):
        total = _apply(op, total, term)
    return total


def build_tree(numbers: list[int], ops: list[str], depth: int, space: str = "") -> Tree:
    """The expression tree: balanced halves for `depth - 1` levels, then flat groups; `space`
    goes on both sides of each operator."""
    if len(numbers) == 1:
        return numbers[0]
    if depth <= 1:
        expr = str(numbers[0]) + "".join(f"{space}{op}{space}{n}" for op, n in zip(ops, numbers[1:]))
        return {"expr": expr, "value": _eval_flat(numbers, ops), "children": list(numbers)}
    mid = (len(numbers) + 1) // 2
    left = build_tree(numbers[:mid], ops[:mid - 1], depth - 1, space)
    right = build_tree(numbers[mid:], ops[mid:], depth - 1, space)
    op = ops[mid - 1]
    expr = f"{_text(left)}{space}{op}{space}{_text(right)}"
    value = _apply(op, _value(left), _value(right))
    return {"expr": expr, "value": value, "children": [left, right]}


def _text(tree: Tree) -> str:
    return str(tree) if isinstance(tree, int) else f"({tree['expr']})"


def _value(tree: Tree) -> int:
    return tree if isinstance(tree, int) else tree["value"]


def subresults(tree: Tree) -> list[dict[str, Any]]:
    """Every inner node as {"expr", "value"}, children before parents."""
    if isinstance(tree, int):
        return []
    inner = [r for child in tree["children"] for r in subresults(child)]
    return inner + [{"expr": tree["expr"], "value": tree["value"]}]


def _canonical(operators: str) -> str:
    return "".join(sorted(set(operators), key=OPERATORS.index))


def _top_index(count: int) -> int:
    """Where build_tree joins the two top-level halves of `count` numbers in the operator list."""
    return (count + 1) // 2 - 1


def _counts(field: str, value: int | list[int]) -> range:
    counts = [value, value] if isinstance(value, int) else list(value)
    if len(counts) != 2 or not 2 <= counts[0] <= counts[1]:
        raise NeuromasError(f"arith: {field}={value!r} must be an integer >= 2 or a "
                            "pair [lo, hi] with 2 <= lo <= hi")
    return range(counts[0], counts[1] + 1)


@register("arith")
class Arithmetic(SplitTask):
    """Evaluate a generated integer expression; exact match on the integer."""

    name = "arith"
    answer_format = "End your message with 'Answer: <integer>'."

    def __init__(self, operands: int | list[int] = 4, digits: int = 1, operators: str = "+",
                 depth: int = 1, seed: int = 0, train_size: int = 2000, test_size: int = 128,
                 train_operands: int | list[int] | None = None, top_operators: str | None = None,
                 min_value: int | None = None, max_value: int | None = None, min_result: int | None = None,
                 spaced: bool = False, answer_not_shown: bool = False):
        counts = _counts("operands", operands)
        train_counts = counts if train_operands is None else _counts("train_operands", train_operands)
        if not 1 <= digits <= 18:
            raise NeuromasError(f"arith: digits={digits} must be between 1 and 18")
        if not operators or set(operators) - set(OPERATORS):
            raise NeuromasError(f"arith: operators={operators!r} must be made of {OPERATORS!r}")
        if depth < 1:
            raise NeuromasError(f"arith: depth={depth} must be >= 1 (1 is a flat expression)")
        if top_operators is not None:
            if not top_operators or set(top_operators) - set(OPERATORS):
                raise NeuromasError(f"arith: top_operators={top_operators!r} must be made of {OPERATORS!r}")
        if train_size < 0 or test_size < 0:
            raise NeuromasError("arith: train_size and test_size must be >= 0")
        self.counts = counts
        self.low, self.high = (0 if digits == 1 else 10 ** (digits - 1)), 10 ** digits - 1
        if min_value is not None:
            if not self.low <= min_value <= self.high:
                raise NeuromasError(f"arith: min_value={min_value} must be between {self.low} and "
                                    f"{self.high} (the numbers of {digits} digit(s))")
            self.low = min_value
        if max_value is not None:
            if not self.low <= max_value <= self.high:
                raise NeuromasError(f"arith: max_value={max_value} must be between {self.low} and "
                                    f"{self.high} (the numbers of {digits} digit(s), from min_value)")
            self.high = max_value
        self.operators = _canonical(operators)
        self.top_operators = None if top_operators is None else _canonical(top_operators)
        self.depth = depth
        self.min_result = min_result
        self.answer_not_shown = answer_not_shown
        self.space = " " if spaced else ""
        test = self._draw_test(random.Random(f"arith-test:{seed}"), test_size)
        held_out = {ex.input for ex in test if len(ex.meta["operands"]) in train_counts}
        self.counts = train_counts
        train = self._draw_train(random.Random(f"arith-train:{seed}"), train_size, held_out)
        self.counts = counts
        super().__init__(train, test)

    def space_size(self) -> int:
        """How many distinct expressions the knobs allow."""
        values, ops = self.high - self.low + 1, len(self.operators)
        if self.top_operators is None:
            return sum(values ** k * ops ** (k - 1) for k in self.counts)
        return sum(values ** k * ops ** (k - 2) * len(self.top_operators) for k in self.counts)

    def _example(self, rng: random.Random, split: str, index: int) -> Example:
        count = rng.choice(self.counts)  # drawn once, so that rejection does not favour counts it rejects less
        for _ in range(1000):  # min_result, answer_not_shown: rejection sampling, bounded so it cannot hang
            numbers = [rng.randint(self.low, self.high) for _ in range(count)]
            ops = [rng.choice(self.operators) for _ in numbers[1:]]
            if self.top_operators is not None:  # the operator build_tree puts between the halves
                ops[_top_index(len(numbers))] = rng.choice(self.top_operators)
            tree = build_tree(numbers, ops, self.depth, self.space)
            if ((self.min_result is None or all(r["value"] >= self.min_result for r in subresults(tree)))
                    and not (self.answer_not_shown and tree["value"] in numbers)):
                break
        else:
            wanted = " and ".join([f"min_result={self.min_result}"] * (self.min_result is not None)
                                  + ["answer_not_shown"] * self.answer_not_shown)
            raise NeuromasError(f"arith: {wanted} found no expression allowed in 1000 draws; "
                                "loosen the knobs (allow '+' or '*' in operators, widen the numbers) or drop it")
        expr = tree["expr"]
        return Example(
            id=f"arith/{split}/{index}", input=f"What is {expr}?", target=tree["value"],
            meta={"expression": expr, "operands": numbers, "operators": ops, "tree": tree,
                  "subresults": subresults(tree)},
        )

    def _draw_test(self, rng: random.Random, size: int) -> list[Example]:
        if size > self.space_size():
            raise NeuromasError(f"arith: test_size={size} but these knobs allow only "
                                f"{self.space_size()} distinct expressions; lower test_size")
        test, seen = [], set()
        for _ in range(50 * size + 1000):  # rejection sampling; bounded so it cannot hang
            if len(test) == size:
                break
            ex = self._example(rng, "test", len(test))
            if ex.input not in seen:
                seen.add(ex.input)
                test.append(ex)
        if len(test) < size:
            raise NeuromasError(f"arith: could not draw {size} distinct test expressions from "
                                f"{self.space_size()}; lower test_size")
        return test

    def _draw_train(self, rng: random.Random, size: int, held_out: set[str]) -> list[Example]:
        if size and len(held_out) >= self.space_size():
            raise NeuromasError("arith: the test set uses every expression these knobs allow, "
                                "leaving none to train on; lower test_size")
        train = []
        for _ in range(100 * size + 10000):
            if len(train) == size:
                break
            ex = self._example(rng, "train", len(train))
            if ex.input not in held_out:
                train.append(ex)
        if len(train) < size:
            raise NeuromasError("arith: almost every expression is in the test set; "
                                "lower test_size or widen the knobs")
        return train

    def split_input(self, example: Example, parts: int) -> list[str]:
        """The sum cut into parts whose values add up to it. A flat sum: consecutive runs of the
        numbers, "What is 3+5+2+7?" -> "What is 3+5?", "What is 2+7?". A sum of two sub-expressions
        (`+` between the halves): its two halves, "What is (3*5)+(2*7)?" or "What is 3*5+2*7?" ->
        "What is 3*5?", "What is 2*7?". Anything else has no parts that add up, so it is refused.
        A part with no number left (more parts than numbers) says so rather than inventing one.
        """
        return [f"What is {expr}?" if expr else "(no numbers in this part)"
                for expr, _ in self._parts(example, parts)]

    def question(self, example: Example, parts: int = 1, part: int = 0) -> str:
        """What a node that reduces parts is asked: their sum, without the numbers, as lookup's
        reducer reads "Find the sum of the numbers of the owl and the cat." without the list. Every
        reduction of a sum that splits (`split_input`) is a sum, so every such node reads the same."""
        self._parts(example, 2)  # refuses a question whose parts do not add up, naming the fix
        return "What is the sum of the parts?"

    def part_targets(self, example: Example, parts: int) -> list[Any] | None:
        """The value of each part (None for a part with no numbers)."""
        return [value for _, value in self._parts(example, parts)]

    def _parts(self, example: Example, parts: int) -> list[tuple[str, int | None]]:
        operators = example.meta["operators"]
        if not set(operators) - {"+"}:
            runs = consecutive_runs(example.meta["operands"], parts)
            plus = f"{self.space}+{self.space}"
            return [(plus.join(map(str, run)), sum(run)) if run else ("", None) for run in runs]
        numbers = example.meta["operands"]
        top = _top_index(len(numbers))
        if operators[top] == "+" and parts == 2:
            if self.depth >= 2:
                halves = example.meta["tree"]["children"]
            else:  # flat: + binds last and left to right, so "3*5+2*7-1" is (3*5) + (2*7-1)
                mid = top + 1
                halves = [build_tree(numbers[:mid], operators[:top], 1, self.space),
                          build_tree(numbers[mid:], operators[mid:], 1, self.space)]
            return [(str(half) if isinstance(half, int) else half["expr"], _value(half)) for half in halves]
        raise NeuromasError("arith: input_slices needs parts that add up to the answer: operators='+', "
                            "or top_operators='+' and a first layer of width 2 (with - or * "
                            "elsewhere they do not): set operators: '+' or input_slices: false")

    def extract(self, completion: str, example: Example | None = None) -> str | None:
        return rewards.extract_number(completion)

    def normalize(self, target: Any) -> str:
        return rewards.normalize_number(target)
