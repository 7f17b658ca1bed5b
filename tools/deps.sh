#!/usr/bin/env bash
# Installs the Debian packages that building and testing need, when missing:
# the Vulkan loader and headers (vulkan-go's cgo), lavapipe (a CPU Vulkan
# driver, so the GPU kernels are tested on any machine), glslc and spirv-tools
# (shaders), the Khronos validation layer (tests fail on its messages), and
# gcc with the C library's headers (libc6-dev, which gcc only recommends and
# --no-install-recommends leaves out; the cgo of vk/internal/vkc includes them),
# and make (.ci/run calls this script before make, which a bare Debian lacks).
set -euo pipefail
pkgs=(libvulkan1 libvulkan-dev mesa-vulkan-drivers glslc spirv-tools vulkan-validationlayers gcc libc6-dev make)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; run as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
