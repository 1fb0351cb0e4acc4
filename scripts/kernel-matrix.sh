#!/usr/bin/env bash
# The kernel matrix (CI, after `npm test`): every lab scenario on Debian's 5.10, 6.1 and 6.12 kernels
# in qemu guests (`ctprobe lab SCENARIO --kernel REL --capture DIR`), cells one at a time. Fails when a
# cell does not match its expectation, when a kernel logged nothing for a scenario that must log, or
# when the model disagrees with a guest kernel's own log lines on a replayed capture. Writes the
# README's table of kernels × scenarios checked (dates, Debian package versions).
#
#   scripts/kernel-matrix.sh                 all kernels and scenarios, README table updated
#   KERNELS="6.1" SCENARIOS="oow-rst" scripts/kernel-matrix.sh      a part (README left alone)
#   KERNEL_MATRIX_DIR=DIR keeps the results and captures there (default: a temp dir, removed)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --guests
KERNELS=${KERNELS:-"5.10 6.1 6.12"}
SCENARIOS=${SCENARIOS:-"oow-rst half-close-leak port-reuse"}
full=0
[ "$KERNELS" = "5.10 6.1 6.12" ] && [ "$SCENARIOS" = "oow-rst half-close-leak port-reuse" ] && full=1
if [ -n "${KERNEL_MATRIX_DIR:-}" ]; then DIR=$KERNEL_MATRIX_DIR; mkdir -p "$DIR"; else DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT; fi
# Ctrl-C / SIGTERM: the lab in flight stops its guest; exit through the EXIT trap (temp dir removed).
trap 'exit 130' INT
trap 'exit 143' TERM
failed=0
for k in $KERNELS; do
  for s in $SCENARIOS; do
    rm -rf "${DIR:?}/$k/$s"; mkdir -p "$DIR/$k"
    t0=$(date +%s)
    for attempt in 1 2; do
      node dist/cli/main.js lab "$s" --kernel "$k" --capture "$DIR/$k/$s" -o json >"$DIR/$k/$s.json" 2>"$DIR/$k/$s.err"
      rc=$?
      # An emulated guest that never came up (a boot hiccup on a loaded host) is tried once more;
      # a lab result, good or bad, never is.
      grep -q 'did not come up' "$DIR/$k/$s.err" || break
      echo "kernel-matrix: $k $s: the guest did not come up, once more" >&2
    done
    echo "kernel-matrix: $k $s: exit $rc in $(( $(date +%s) - t0 ))s" >&2
    [ $rc -eq 0 ] || { failed=1; sed 's/^/  /' "$DIR/$k/$s.err" | tail -5 >&2; }
  done
done
# Check every result (matches, log lines attributed) and, for the full matrix, rewrite the README table.
readme=(); [ $full -eq 1 ] && readme=(--readme README.md)
node scripts/kernel-matrix-table.mjs "$DIR" "${readme[@]}" || failed=1
# The model against each guest kernel's own log lines, on every cell's capture.
KERNEL_MATRIX_DIR="$DIR" npx vitest run test/kernel-agreement.test.ts || failed=1
exit $failed
