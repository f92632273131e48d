#!/usr/bin/env bash
# The GPU checks of the project, in one run on a CUDA machine (about 8 minutes on one GPU):
#   1. the CUDA tests (pytest -m gpu);
#   2. the 256-stack benchmark (inal-bench core --device cuda --only ngd_stack256_cuda);
#   3. exact INAL at n = 24..28 (majority, depth 1, width 64, 2 inits), wall time per n;
#   4. a 10^4-cell packed study on one GPU (tiny cells, gamma x sigma x train.seed = 20 x 10 x 50,
#      num_gpus=0.25: four tasks share the GPU, pack sizes from the cost model), its dry run first.
# Usage: bash inal_bench/gpu_checks.sh [output dir]   (default $OUT, else ./gpu_checks_out)
# Each step has its own time limit; a step that fails is reported and the next one runs.
# Not yet run: no GPU was available where it was written (see README, "GPU figures").
set -u
cd "$(dirname "$0")/.." || exit 2
OUT_DIR="${1:-${OUT:-./gpu_checks_out}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-4}"
status=0
step() {  # step <name> <seconds> <command...>
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s)" | tee -a "$OUT_DIR/summary.txt"
  if timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1; then
    echo "   ok in $((SECONDS - t0)) s" | tee -a "$OUT_DIR/summary.txt"
  else
    echo "   FAILED (rc $?) after $((SECONDS - t0)) s: see $OUT_DIR/$name.log" | tee -a "$OUT_DIR/summary.txt"
    status=1
  fi
  tail -n 5 "$OUT_DIR/$name.log" | sed 's/^/   | /' | tee -a "$OUT_DIR/summary.txt"
}

"$PY" -c "import torch, sys; ok = torch.cuda.is_available(); print('CUDA:', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 3)" \
  | tee "$OUT_DIR/summary.txt" || { echo "no CUDA device: nothing to check"; exit 3; }

step pytest_gpu 150 "$PY" -m pytest -q -m gpu tests
step stack256 90 "$PY" -m inal_bench.cli core --device cuda --only ngd_stack256_cuda
step inal_exact_24_28 150 "$PY" - <<'PYEOF'
import json, time, torch
from inal_core import NetworkSpec
from inal_core.inal import estimate_inal
from inal_core.targets import make_target
for n in range(24, 29):
    target, spec = make_target("majority", n), NetworkSpec(n, 64, 1)
    torch.cuda.synchronize(); t = time.perf_counter()
    r = estimate_inal(target, spec, n_inits=2, method="exact", device="cuda", memory_budget_bytes=8 << 30)
    torch.cuda.synchronize()
    print(json.dumps({"name": f"inal_exact_n{n}_cuda", "value": time.perf_counter() - t, "unit": "s",
                      "inal_max": float(max(r.per_layer)), "method": r.method}), flush=True)
PYEOF
GRID=(n=4 c=1 width=2 depth=1 T=1 train.N=2n train.n_eval=256 train.checkpoints=1 inal.n_inits=4
      "gamma=$(seq -s, 0.01 0.01 0.2)" "sigma=$(seq -s, 0 0.0001 0.0009)" "train.seed=range(0,50)" device=cuda
      "results_dir=$OUT_DIR/study" hydra.launcher.report=false hydra.launcher.progress=false
      hydra.launcher.num_gpus=0.25 hydra.launcher.local_gpus=1 "hydra.sweep.dir=$OUT_DIR/sweep")
step study_1e4_dry_run 60 "$PY" -m sweeps.run -m "${GRID[@]}" hydra.launcher.dry_run=true
step study_1e4 150 "$PY" -m sweeps.run -m "${GRID[@]}"
step study_1e4_check 30 "$PY" -c "
from analysis.load import load_study
s = load_study('$OUT_DIR/study/default')
print('runs', len(s.runs), 'status', s.runs.status.value_counts().to_dict(), 'devices', sorted(set(s.runs.device)))
assert len(s.runs) == 10000 and set(s.runs.status) <= {'ok', 'diverged'}"
echo "== done: $OUT_DIR/summary.txt" ; exit $status
