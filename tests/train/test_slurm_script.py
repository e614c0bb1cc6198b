"""scripts/slurm.sbatch, run as Slurm would run it on 2 nodes: `srun` and `scontrol` are stand-ins here (srun starts
its command once per node with the node's SLURM_* variables, all on this machine), torchrun and fronde are real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm.sbatch"

SRUN = """#!/usr/bin/env bash
# srun stand-in: drop srun's own options, start the command once per node, fail if any node fails
while [[ "$1" == --* ]]; do shift; done
pids=()
for ((node = 0; node < SLURM_JOB_NUM_NODES; node++)); do
    SLURM_NODEID=$node SLURM_PROCID=$node "$@" > "$SRUN_LOGS/node$node.log" 2>&1 &
    pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
exit $rc
"""


def test_the_slurm_script_trains_a_stage_on_two_nodes(tmp_path, recipe_file):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(SRUN)
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho 127.0.0.1\necho 127.0.0.1\n")  # show hostnames node[1-2]
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    recipe = recipe_file("slurm")
    env = os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "node[1-2]",
                        "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "4242", "GPUS_PER_NODE": "1",
                        "RDZV_PORT": str(free_port()), "PYTHON": sys.executable, "SRUN_LOGS": str(tmp_path),
                        "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    res = subprocess.run(["bash", str(SCRIPT), "pretrain", str(recipe)], env=env, capture_output=True, text=True,
                         timeout=300)
    logs = "".join(log.read_text() for log in sorted(tmp_path.glob("node*.log")))  # none if srun never ran
    assert res.returncode == 0, res.stdout + res.stderr + logs[-3000:]
    stage = recipe.parent / "runs" / "slurm" / "pretrain"
    steps = [json.loads(line)["step"] for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13)) and (stage / "model" / "config.json").is_file()
    assert "no usable checkpoint" in logs  # started with --resume, as a restart needs
    ledger = json.loads((recipe.parent / "runs" / "slurm" / "ledger.json").read_text())
    assert ledger["stages"][0]["n_devices"] == 2  # one process on each of the 2 nodes
