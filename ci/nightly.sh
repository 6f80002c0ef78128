#!/usr/bin/env bash
# Nightly: every suite (slow and nightly tests included) on each kernel of the matrix in
# kernels/kernels.toml, one kernel at a time, then the kernel x test report.
# Resumable: a kernel whose results.json records a whole run (pytest exit 0 or 1) is not run
# again; an interrupted one is (--fresh redoes all).
# Usage: ci/nightly.sh [--fresh] [-- extra pytest args]
# KNIT_NIGHTLY_KERNELS="a b" narrows the kernels, KNIT_NIGHTLY_PATHS="suites/mptcp" the tests,
# KNIT_NIGHTLY_USERSPACES="bookworm trixie" the guest userspaces each kernel runs on.
# Then the mutation score over the whole catalogue (kernels/mutants, `knit mutate --all`:
# TOA, TIPC, and MPTCP with a kernel build per mutant); resumable too, its store is
# $OUT/mutate/store.json. KNIT_NIGHTLY_MUTATE=0 leaves it out.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${KNIT_NIGHTLY_OUT:-artifacts/nightly}
if [ "${1:-}" = "--fresh" ]; then rm -rf "$OUT"; shift; fi
[ "${1:-}" = "--" ] && shift

./bootstrap.sh || exit 1
# One CI job per kernel narrows the matrix to its kernel.
if [ -n "${KNIT_NIGHTLY_KERNELS:-}" ]; then
  read -ra KERNELS <<< "$KNIT_NIGHTLY_KERNELS"
else
  mapfile -t KERNELS < <(.venv/bin/python -c 'from knit import kernels
print("\n".join(kernels.load_catalog()["matrix"]["nightly"]))')
fi
read -ra PATHS <<< "${KNIT_NIGHTLY_PATHS:-tests/unit tests/vm tests/faults suites}"
USERSPACE_ARGS=()
for u in ${KNIT_NIGHTLY_USERSPACES:-trixie}; do
  .venv/bin/knit rootfs build "$u" || exit 1
  USERSPACE_ARGS+=(--userspace "$u")
done
# Under TCG each worker is one emulated VM: more workers than cores only slows all of them.
WORKERS=${KNIT_WORKERS:-$(nproc)}

start=$(date +%s)
rc=0
for k in "${KERNELS[@]}"; do
  dir="$OUT/$k"
  if .venv/bin/python -c 'import sys; from pathlib import Path; from knit import results
sys.exit(not results.completed(Path(sys.argv[1])))' "$dir/results.json"; then
    echo "nightly: $k already done, skipping"; continue
  fi
  echo "nightly: $k"
  .venv/bin/knit kernels fetch "$k" || { rc=1; continue; }
  t0=$(date +%s)
  .venv/bin/pytest -n "$WORKERS" --nightly --kernel "$k" "${USERSPACE_ARGS[@]}" \
      --flake-retries 1 \
      "${PATHS[@]}" \
      --knit-artifacts "$dir" --junitxml "$dir/junit.xml" "$@"
  r=$?
  echo "nightly: $k pytest exit $r after $(( $(date +%s) - t0 ))s"
  # 2 is pytest interrupted (Ctrl-C): stop here; a rerun resumes with this kernel.
  if [ "$r" = 2 ] || [ "$r" -ge 128 ]; then echo "nightly: interrupted at $k" >&2; exit "$r"; fi
  [ "$r" = 0 ] || rc=1
done
results=()
for k in "${KERNELS[@]}"; do [ -f "$OUT/$k/results.json" ] && results+=("$OUT/$k/results.json"); done
.venv/bin/knit report "${results[@]}" -o "$OUT/report.html" --kcidb "$OUT/kcidb.json"
if [ "${KNIT_NIGHTLY_MUTATE:-1}" != 0 ]; then
  t0=$(date +%s)
  # One guest at a time: each mutant is its own pytest session.
  .venv/bin/knit mutate --all --nightly --json --out "$OUT" > "$OUT/mutation-summary.json"
  r=$?
  echo "nightly: knit mutate exit $r after $(( $(date +%s) - t0 ))s, $OUT/mutation.html"
  [ "$r" = 0 ] || rc=1
fi
echo "nightly: done in $(( $(date +%s) - start ))s, report $OUT/report.html"
exit "$rc"
