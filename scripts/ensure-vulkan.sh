#!/usr/bin/env bash
# Makes sure a Vulkan driver is installed: a GPU driver, or Mesa's software one (lavapipe).
# On Debian/Ubuntu as root it installs lavapipe when no driver is present; elsewhere it
# says what to install.
set -euo pipefail

icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d)
have_icd() {
  local d
  for d in "${icd_dirs[@]}"; do
    compgen -G "$d/*.json" >/dev/null && return 0
  done
  return 1
}
have_loader() {
  # Not `ldconfig -p | grep -q`: with pipefail, grep -q exiting at the first match can
  # kill ldconfig with SIGPIPE and fail the pipeline at random.
  local libs
  libs=$(ldconfig -p 2>/dev/null || true)
  [[ "$libs" == *libvulkan.so.1* ]]
}

if have_icd && have_loader; then
  exit 0
fi

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "No Vulkan driver found: installing Mesa's software driver (lavapipe)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  have_icd && have_loader && { echo "Vulkan driver installed."; exit 0; }
fi

cat >&2 <<'MSG'
No Vulkan driver found. liandan needs a GPU adapter:
  Debian/Ubuntu:  sudo apt-get install mesa-vulkan-drivers libvulkan1   (software driver)
  elsewhere:      install your GPU's Vulkan/Metal/DX12 driver
MSG
exit 1
