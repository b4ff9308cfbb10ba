# Step runner of benchmarks/gpu_check.sh (sourced; tested by tests/test_gpu_check.py).
#   step NAME SECONDS COMMAND...   runs COMMAND (a program or an exported function) under
#                                  `timeout`, its output in
#                                  $RESULTS/gpu_check_NAME.log, one line in $RESULTS/gpu_check_steps.txt
#                                  ("NAME: ok|FAILED (exit N)|TIMED OUT after S s (T s)"), then copies
#                                  $RESULTS/gpu_* to $OUT (when set). A failed step never stops the run:
#                                  it is counted in $failed and the next step runs.
RESULTS="${RESULTS:-benchmarks/results}"
failed=0
mkdir -p "$RESULTS"
: > "$RESULTS/gpu_check_steps.txt"

copy_out() {
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && cp -f "$RESULTS"/gpu_* "$OUT"/ 2>/dev/null
  fi
  return 0
}

step() {
  local name=$1 limit=$2 start=$SECONDS rc status
  shift 2
  echo "== $name (at most ${limit} s)"
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$RESULTS/gpu_check_$name.log" 2>&1
  rc=$?
  case $rc in
    0) status="ok" ;;
    124|137) status="TIMED OUT after $limit s" ;;
    *) status="FAILED (exit $rc)" ;;
  esac
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  echo "$name: $status ($((SECONDS - start)) s)" | tee -a "$RESULTS/gpu_check_steps.txt"
  tail -n 15 "$RESULTS/gpu_check_$name.log"
  copy_out
}
