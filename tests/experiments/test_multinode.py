"""trainer.num_nodes=2 on one machine: two torchrun "nodes" (c10d rendezvous on localhost, one gloo process
each) against one node with two processes and the same global batch (mtv.runner.launch)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, results, run_py
from test_preemption import assert_same_run

COMMON = ("debug=smoke", "logger=csv", "trainer.strategy=ddp", "trainer.max_epochs=2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_node_with_two_processes(env: dict, tmp_path: Path) -> None:
    one_node, two_nodes = tmp_path / "one_node", tmp_path / "two_nodes"
    local = run_py(*COMMON, "trainer.devices=2", f"hydra.run.dir={one_node}", env=env)
    assert local.returncode == 0, local.stderr[-3000:]
    port = _free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={rank}", "--nproc-per-node=1",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=mtv-two-nodes",
         "run.py", *COMMON, "trainer.num_nodes=2", "trainer.devices=1", f"hydra.run.dir={two_nodes}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(2)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    record = results(two_nodes)
    assert record["status"] == "completed" and record["devices"]["num_nodes"] == 2
    assert "MEMBER: 2/2" in "".join(outputs)
    assert_same_run(one_node, two_nodes)
