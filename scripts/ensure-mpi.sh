#!/usr/bin/env bash
# Makes sure Open MPI (mpirun and its development files) and libclang (rsmpi generates
# its bindings at build time) are installed, for `cargo build --features mpi`. On
# Debian/Ubuntu as root it installs them when missing; elsewhere it says what to install.
set -euo pipefail

have_all() {
  command -v mpirun >/dev/null && command -v mpicc >/dev/null &&
    compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null
}

if have_all; then
  exit 0
fi

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "Open MPI or libclang missing: installing openmpi-bin libopenmpi-dev libclang-dev..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openmpi-bin libopenmpi-dev libclang-dev >/dev/null
  have_all && { echo "Open MPI installed."; exit 0; }
fi

cat >&2 <<'MSG'
Open MPI not found. Data-parallel training across processes needs it:
  Debian/Ubuntu:  sudo apt-get install openmpi-bin libopenmpi-dev libclang-dev
  elsewhere:      your cluster's MPI module (module load openmpi) and libclang
MSG
exit 1
