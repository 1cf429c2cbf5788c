#!/usr/bin/env bash
# The MPI tests (`make test-dist`): the communicator's collectives on 2 and 3 ranks, SGD
# steps on N ranks × 1/N of a batch equal to 1 rank × the batch (parameters bitwise equal
# across ranks), and a rank that exits mid-run making the job fail within a bounded time
# instead of hanging.
# Expects dist_check built with `--features mpi`: target/debug/examples/dist_check, or
# the binary $DIST_CHECK names.
set -euo pipefail

bin=${DIST_CHECK:-target/debug/examples/dist_check}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mpirun_flags=(--oversubscribe)
# Open MPI refuses to run as root unless told; containers and CI often are root.
if [ "$(id -u)" = 0 ]; then
  mpirun_flags+=(--allow-run-as-root)
fi

for n in 2 3; do
  out=$(timeout 120 mpirun "${mpirun_flags[@]}" -np "$n" "$bin")
  ok=$(grep -c "all collectives right, training equal" <<<"$out" || true)
  if [ "$ok" != "$n" ]; then
    echo "test-dist: $n ranks: $ok of $n ranks passed" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "test-dist: collectives and training on $n ranks: ok"
done

# Runs dist_check on 3 ranks with `$2` and expects the job to fail within 60 s, its
# output matching the regular expression `$3`; `$1` says what is tested.
expect_failure() {
  local what=$1 flags=$2 pattern=$3 start status out took
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086 # the flags split into words on purpose
  out=$(timeout 60 mpirun "${mpirun_flags[@]}" -np 3 "$bin" $flags 2>&1)
  status=$?
  set -e
  took=$(( $(date +%s) - start ))
  if [ "$status" = 0 ] || [ "$status" = 124 ]; then
    echo "test-dist: $what gave status $status after ${took}s (want a failure, no hang)" >&2
    echo "$out" >&2
    exit 1
  fi
  if ! grep -Eq "$pattern" <<<"$out"; then
    echo "test-dist: $what: the output does not match '$pattern':" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "test-dist: $what ends the job (status $status) in ${took}s"
}

# Rank 1 exits at its 50th all-reduce: mpirun ends the job and names the process
# ([[job,1],rank]); the exiting rank itself says nothing more.
expect_failure "a rank exiting mid-run" "--fail-rank 1" \
  "Process name: \[\[[0-9]+,[0-9]+\],1\]"

# Rank 2 is killed (SIGKILL) at its 50th all-reduce while rank 0 saves a checkpoint at
# every step: mpirun names the killed rank, and the checkpoint file left behind is whole
# (written to a temporary file, then renamed) and holds what rank 0 saved. The count of
# temporary files left (a save cut short leaves one beside the checkpoint) is only
# printed.
ckpt=$scratch/checkpoint.safetensors
expect_failure "a rank killed mid-run" "--kill-rank 2 --checkpoint $ckpt" \
  "rank 2 with PID [0-9]+ on node .* exited on signal 9"
"$bin" --verify-checkpoint "$ckpt"
leftovers=$(find "$scratch" -name '*.tmp*' | wc -l)
echo "test-dist: the last checkpoint is intact ($leftovers temporary files left)"

# Rank 2 meets an error at its 50th all-reduce: it must abort the job (MPI_Abort) rather
# than return, which would leave the others waiting in MPI's finalize.
expect_failure "a rank meeting an error" "--error-rank 2" \
  "dist_check: rank 2: .*rank 2 fails"
