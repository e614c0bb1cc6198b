#!/usr/bin/env bash
# The GPU measurements the open issues ask for, cut into parts that each fit a 10-minute call on a rented or lent
# GPU machine with no network (see docs/offline-gpu.md). Every part writes its log and small results to $OUT
# (default ./gpu-out); what a part measures is printed with the exact command, ready for docs/benchmarks.md.
#
# On the GPU machine, from the repository root, after the kit is installed:
#   eval "$(python3 scripts/offline_kit.py install)"
#   bash benchmarks/gpu_session.sh check                  # GPU tests, train and generation throughput (~8 min)
#   bash benchmarks/gpu_session.sh speedrun small-gpu 8   # a speedrun fitted into ~8 minutes (--minutes 8)
#   bash benchmarks/gpu_session.sh trainer                # the probe through the real training loop (~4 min)
#   bash benchmarks/gpu_session.sh distill                # sequence-level distillation from SmolLM2 (~5 min)
#   bash benchmarks/gpu_session.sh moe-dense 5 moe        # MoE against dense at 5 minutes: the MoE side, then
#   bash benchmarks/gpu_session.sh moe-dense 5 dense      #   the dense side in the next call (prints the comparison)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
part="${1:-check}"

step() {  # step SECONDS NAME COMMAND...: run one measurement with its own time limit, log it, keep going
    local limit="$1" name="$2"
    shift 2
    echo "== $name: $* (limit ${limit}s)" | tee -a "$OUT/$part.log"
    timeout --signal=TERM --kill-after=20 "$limit" "$@" 2>&1 | tee -a "$OUT/$part.log"
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$OUT/$part.log"
}

case "$part" in
check)
    step 30 device nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    step 30 torch python3 -c "import torch, transformers; print(torch.__version__, torch.version.cuda, transformers.__version__, torch.cuda.get_device_name())"
    step 120 gpu-tests python3 -m pytest -q -p no:cacheprovider tests/model/test_gpu.py \
        tests/infer/test_gpu_graphs.py tests/infer/test_mtp_drafts.py tests/train/test_checkpoint_writer.py
    step 200 train-throughput python3 benchmarks/train_throughput.py --preset probe --batch 16 --seq 1024 \
        --fronde-compile --repeats 1
    step 120 serve-throughput python3 benchmarks/serve_throughput.py --preset probe --batch 64 --repeats 2
    step 90 rollout-throughput python3 benchmarks/serve_throughput.py --batch 8 --group 8 --new 48 --repeats 2
    ;;
speedrun)
    recipe="${2:-small-gpu}"
    minutes="${3:-8}"
    # each training stage fits its share of the minutes (fronde.train.budget); the limit leaves 90 s for what is not
    # fitted to overrun before SIGTERM (the running stage then checkpoints and the same command resumes it)
    step $((minutes * 60 + 90)) "speedrun-$recipe" fronde speedrun --recipe "$recipe" --out "runs/$recipe" \
        --minutes "$minutes"
    for f in report.md ledger.json; do [ -f "runs/$recipe/$f" ] && cp "runs/$recipe/$f" "$OUT/$recipe-$f"; done
    for stage in pretrain sft rl; do
        [ -f "runs/$recipe/$stage/metrics.jsonl" ] && cp "runs/$recipe/$stage/metrics.jsonl" "$OUT/$recipe-$stage.jsonl"
    done
    ;;
trainer)
    # issue 4: the probe inside the real loop (data loader, logging, evaluation, checkpoint) against the bare model
    step 300 train-through-trainer python3 benchmarks/train_throughput.py --preset probe --batch 16 --seq 1024 \
        --fronde-compile --through-trainer --steps 300 --repeats 1
    step 150 checkpoint-stall python3 benchmarks/checkpoint_stall.py --preset probe --device cuda
    ;;
distill)
    # the tiny model pretrained on the GPU (a minute), then the SmolLM2 teacher answers 2,048 arithmetic problems in
    # batches of 256 and the verifier keeps the right ones for SFT: the teacher's generation is what is measured
    # --resume: a rerun of this part on the same machine continues what a time limit cut (fronde refuses to train
    # over an earlier run without --resume or --restart)
    step 240 pretrain fronde pretrain tiny-cpu --resume --set run.name=gpu-distill
    step 420 distill fronde distill distill-tiny-cpu --resume --set run.name=gpu-distill \
        --set 'distill.prompt_tasks=[{name="arithmetic:1", n=2048}]' --set distill.batch_size=256 \
        --set schedule.max_steps=200
    [ -f runs/gpu-distill/ledger.json ] && cp runs/gpu-distill/ledger.json "$OUT/distill-ledger.json"
    ;;
moe-dense)
    minutes="${2:-5}"
    variant="${3:-moe}"
    # python-stdlib + GCIDE (14.6M tokens; carry .gpu/dicts/dictd): stdlib alone (3M) would be read ~30 times
    step $((minutes * 60 + 180)) "moe-vs-dense-$variant" python3 benchmarks/moe_vs_dense.py --recipe small-gpu \
        --set 'data.sources=[{path="python-stdlib"}, {path="gcide"}]' \
        --minutes "$minutes" --only "$variant" --out runs/moe-vs-dense
    ;;
*)
    echo "unknown part '$part': check | speedrun RECIPE [MINUTES] | trainer | distill | moe-dense MINUTES moe|dense" >&2
    exit 2
    ;;
esac
