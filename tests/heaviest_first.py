"""The suite's schedule on several workers (pytest-xdist): the tests that take minutes start
first, one per worker, so they run side by side instead of one after the other.

xdist's default ("load") hands each worker a block of consecutive tests to begin with, so the
two model-card tests, neighbours in test_assets.py, landed on the same worker and ran in series
(~10 minutes of a ~14-minute suite on a 2-core machine without bf16). The rest is scheduled as
xdist does.
"""

from __future__ import annotations

from xdist.scheduler import LoadScheduling

# Slowest first: minutes each on a 2-core machine, one torch thread per worker.
HEAVIEST = (
    "tests/test_assets.py::test_classifier_figures_reproduce_the_model_card",
    "tests/test_assets.py::test_masked_lm_figures_reproduce_the_model_card",
    "tests/test_init.py::test_structured_start_leaves_the_plateau_where_random_init_does_not",
)


class HeaviestFirst(LoadScheduling):
    """LoadScheduling whose every hand-out starts with the heaviest test still pending (and
    holds the other heavy ones back for the next worker that asks). `_send_tests` is xdist's
    own (private) hand-out; should a release rename it, tests/test_schedule.py fails rather
    than the suite quietly going back to running the card tests in series."""

    def _send_tests(self, node, num: int) -> None:
        heavy = sorted((i for i in self.pending if self.collection[i] in HEAVIEST),
                       key=lambda i: HEAVIEST.index(self.collection[i]))
        if heavy:
            light = [i for i in self.pending if self.collection[i] not in HEAVIEST]
            self.pending[:] = heavy[:1] + light + heavy[1:]
        super()._send_tests(node, num)
