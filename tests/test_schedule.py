"""The suite's own schedule on several workers (tests/heaviest_first.py)."""

import ast
from pathlib import Path

from heaviest_first import HEAVIEST, HeaviestFirst

ROOT = Path(__file__).resolve().parent.parent


def test_the_heaviest_tests_named_exist():
    for nodeid in HEAVIEST:
        path, name = nodeid.split("::")
        tree = ast.parse((ROOT / path).read_text())
        assert name in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, nodeid


class TwoWorkerConfig:
    """What the scheduler reads of pytest's config under `-n 2`."""

    def getvalue(self, name):
        return {"tx": ["2*popen"]}[name]

    def getoption(self, name):
        return {"maxschedchunk": None}[name]


class FakeWorker:
    def __init__(self, name):
        self.gateway = type("Gateway", (), {"id": name})()
        self.sent, self.shutting_down = [], False

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


def test_the_heaviest_tests_start_first_on_different_workers():
    light = [f"tests/test_light.py::test_{i}" for i in range(40)]
    collection = light[:3] + list(HEAVIEST[:2]) + light[3:] + [HEAVIEST[2]]
    scheduler = HeaviestFirst(TwoWorkerConfig())
    workers = [FakeWorker("gw0"), FakeWorker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    first = [collection[w.sent[0]] for w in workers]
    assert first == list(HEAVIEST[:2])  # one each, the slowest first
    for worker in workers:  # and no worker holds a second one yet
        assert sum(collection[i] in HEAVIEST for i in worker.sent) == 1
    # The third goes first to whichever worker asks for more work next.
    worker, handed_out = workers[1], len(workers[1].sent)
    for index in list(scheduler.node2pending[worker]):
        scheduler.mark_test_complete(worker, index)
    assert collection[worker.sent[handed_out]] == HEAVIEST[2]
    # Every test is handed out exactly once.
    while scheduler.pending:
        for w in workers:
            for index in list(scheduler.node2pending[w]):
                scheduler.mark_test_complete(w, index)
    assert sorted(workers[0].sent + workers[1].sent) == list(range(len(collection)))
