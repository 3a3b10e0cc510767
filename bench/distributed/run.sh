#!/usr/bin/env bash
# Data-parallel training on this machine: the DCGAN (TrainGAN) on
# Fashion-MNIST over 1 and 2 ranks (`cozy run --nproc`, one LibTorch thread
# each), the same per-rank batch, so 2 ranks take twice the images a step.
# Prints steps/s, images/s and the seconds a step spends in collectives
# (rank 0's count), medians of REPEATS runs; then the loss curves of one
# process on the doubled batch against 2 ranks.
#   bench/distributed/run.sh [STEPS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-150}
repeats=${2:-3}
cozy=build/cozy
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
graph() {  # graph BATCH STEPS NAME
  cat >"$work/$3.json" <<JSON
{
  "1": {"class_type": "LoadFashionMNIST", "inputs": {"split": "train", "subset": 8192, "shuffle_seed": 0}},
  "2": {"class_type": "TrainGAN", "inputs": {"dataset": ["1", 0], "steps": $2, "batch": $1, "seed": 0,
        "conditional": false, "name": "$3"}},
  "3": {"class_type": "SaveModel", "inputs": {"model": ["2", 0], "filename_prefix": "$3"}}
}
JSON
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
graph 64 "$steps" speed
echo "TrainGAN, DCGAN 28x28, batch 64 a rank, $steps steps, 1 LibTorch thread a rank, median of $repeats"
printf '%-8s %10s %10s %12s %22s\n' ranks seconds steps/s images/s "collectives s/step"
for n in 1 2; do
  times=() comms=()
  for ((i = 0; i < repeats; i++)); do
    rm -rf "$work/out"
    start=$(date +%s.%N)
    "$cozy" run "$work/speed.json" --output-dir "$work/out" --progress none --threads 1 --nproc "$n" 2>"$work/log" >/dev/null
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
    comms+=("$(grep -o 'rank 0 of [0-9]*: [0-9.]* s in collectives' "$work/log" | awk '{print $5}' || true)")
  done
  t=$(printf '%s\n' "${times[@]}" | median)
  c=$(printf '%s\n' "${comms[@]}" | grep . | median || true)
  printf '%-8s %10.2f %10.2f %12.0f %22s\n' "$n" "$t" "$(echo "$steps / $t" | bc -l)" \
    "$(echo "$steps * 64 * $n / $t" | bc -l)" "$([ -n "$c" ] && echo "$c / $steps" | bc -l | xargs printf '%.4f' || echo -)"
done

# Loss curves: one process on batch 128 against 2 ranks of 64.
curve_steps=${CURVE_STEPS:-400}
graph 128 "$curve_steps" one
graph 64 "$curve_steps" two
"$cozy" run "$work/one.json" --output-dir "$work/curve1" --progress none --threads 1 >/dev/null 2>&1
"$cozy" run "$work/two.json" --output-dir "$work/curve2" --progress none --threads 1 --nproc 2 >/dev/null 2>&1
/usr/bin/python3 - "$work/curve1/one_losses_00001.csv" "$work/curve2/two_losses_00001.csv" <<'PY'
import csv, sys
def load(path):
    rows = list(csv.DictReader(open(path)))
    return [float(r["loss_d"]) for r in rows], [float(r["loss_g"]) for r in rows]
(d1, g1), (d2, g2) = load(sys.argv[1]), load(sys.argv[2])
def smooth(x, k=50):
    return [sum(x[i:i + k]) / k for i in range(0, len(x) - k + 1, k)]
print(f"loss curves over {len(d1)} steps, means of 50-step windows (one process, batch 128 | 2 ranks x 64):")
for name, a, b in (("D", d1, d2), ("G", g1, g2)):
    sa, sb = smooth(a), smooth(b)
    print(f"  {name}: " + "  ".join(f"{x:.2f}|{y:.2f}" for x, y in zip(sa, sb)))
    print(f"  {name}: largest difference of the window means {max(abs(x - y) for x, y in zip(sa, sb)):.3f}")
PY
