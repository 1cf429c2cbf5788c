#!/usr/bin/env bash
# The MPI tests (`make test-dist`): the communicator's collectives on 2 and 3 ranks, SGD
# steps on N ranks × 1/N of a batch equal to 1 rank × the batch (parameters bitwise equal
# across ranks), and a rank that exits mid-run making the job fail within a bounded time
# instead of hanging.
# Expects target/release/examples/dist_check built with `--features mpi`.
set -euo pipefail

bin=target/release/examples/dist_check
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

# Rank 1 of 3 exits at its 50th all-reduce: mpirun must end the job with an error that
# names the failed process, well before the timeout.
start=$(date +%s)
set +e
out=$(timeout 60 mpirun "${mpirun_flags[@]}" -np 3 "$bin" --fail-rank 1 2>&1)
status=$?
set -e
took=$(( $(date +%s) - start ))
if [ "$status" = 0 ] || [ "$status" = 124 ]; then
  echo "test-dist: a rank exiting mid-run gave status $status after ${took}s (want a failure, no hang)" >&2
  echo "$out" >&2
  exit 1
fi
# Open MPI names the process [[job,1],rank]; the exiting rank itself says nothing more.
if ! grep -Eq "Process name: \[\[[0-9]+,[0-9]+\],1\]" <<<"$out"; then
  echo "test-dist: the failure's message does not name the failed rank:" >&2
  echo "$out" >&2
  exit 1
fi
echo "test-dist: a rank exiting mid-run ends the job (status $status) in ${took}s"
