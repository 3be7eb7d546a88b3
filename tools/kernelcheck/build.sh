#!/usr/bin/env bash
# Builds tools/kernelcheck/kernel_check (static, no Python) from the kernel sources with
# the project's per-file ISA flags (see CMakeLists.txt). Usage: build.sh [OUTPUT]
# KERNELCHECK_OBJECTS=DIR: a CMake build tree of _core (e.g. the wheel's build/<tag>, which
# `pip install .` leaves behind): a kernel whose object there is newer than its sources is
# linked as built for the package (the Release flags it ships with) instead of compiled
# again; the rest is compiled here.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$root/build/kernelcheck/kernel_check}"
reuse="${KERNELCHECK_OBJECTS:+$KERNELCHECK_OBJECTS/CMakeFiles/_core.dir}"
obj="$(dirname "$out")/obj"
mkdir -p "$obj"
CXX="${CXX:-g++}"
base=(-std=c++17 -O2 -g0 -fno-plt -Wall -Wextra -I"$root/cpp/include")
avx2=(-mavx2 -mfma -mf16c)
avx512=(-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c
        -Wno-maybe-uninitialized -Wno-uninitialized)
avx512bf16=("${avx512[@]}" -mavx512bf16)
srcs=("$root"/cpp/kernels/*/*.cpp "$root/cpp/testing/f32_w16check_avx2.cpp"
      "$root/cpp/testing/qs8_vnni_emu_avx2.cpp"
      "$root/cpp/runtime/dispatch.cpp" "$root/tools/kernelcheck/kernel_check.cpp")
objs=()
pids=()
for s in "${srcs[@]}"; do
  case "$s" in
    *_avx512vnni.cpp) flags=("${avx512[@]}" -mavx512vnni) ;;
    *_avxvnni.cpp) flags=("${avx2[@]}" -mavxvnni) ;;
    *_avx512bf16.cpp) flags=("${avx512bf16[@]}") ;;
    *_avx512.cpp) flags=("${avx512[@]}") ;;
    *_avx2.cpp) flags=("${avx2[@]}") ;;
    *) flags=() ;;
  esac
  if [ -n "$reuse" ] && [ -f "$reuse/${s#$root/}.o" ] && [ -z "$(find "$s" "$root/cpp/include" \
        "$root"/cpp/kernels/*/*.inc -newer "$reuse/${s#$root/}.o" -print -quit)" ]; then
    objs+=("$reuse/${s#$root/}.o")
    continue
  fi
  o="$obj/$(basename "$s" .cpp).o"
  objs+=("$o")
  # up to date: newer than its source and every header/.inc it may include
  if [ -f "$o" ] && [ -z "$(find "$s" "$root/cpp/include" "$root"/cpp/kernels/*/*.inc "$root"/tools/kernelcheck/*.h \
        "$0" -newer "$o" -print -quit)" ]; then continue; fi
  "$CXX" "${base[@]}" "${flags[@]}" -c "$s" -o "$o" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
"$CXX" -static -o "$out" "${objs[@]}" -lm
echo "built $out"
