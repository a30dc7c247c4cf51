#!/usr/bin/env bash
# Device check for the NVML provider (run from the repository root on a
# machine with an NVIDIA GPU): builds nvml_dump with gcc and compares its
# figures with nvidia-smi. Writes everything under ${OUT:-/tmp}.
set -u
out=${OUT:-/tmp}
srcs="src/sys/nvml.c src/sys/probe.c src/sys/parse.c src/sys/linux/cpu.c src/sys/linux/memory.c
      src/sys/linux/amd.c src/core/alloc.c src/core/error.c src/core/log.c src/core/paths.c
      tests/sys/device/nvml_dump.c"
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Iinclude -Isrc $srcs -ldl -o "$out/nvml_dump" \
  2>"$out/build.log" || { echo "build failed"; cat "$out/build.log"; exit 1; }
nvidia-smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,memory.used,memory.free,driver_version \
  --format=csv,noheader,nounits | tee "$out/smi.csv"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | tee "$out/smi-apps.csv"
nvidia-smi | head -5
"$out/nvml_dump" | tee "$out/dump.txt"
rc=${PIPESTATUS[0]}
# With a CUDA process holding memory, when python3 + a CUDA library can make one.
if command -v python3 >/dev/null && python3 -c "import ctypes; ctypes.CDLL('libcuda.so.1')" 2>/dev/null; then
  python3 - <<'PY' &
import ctypes, time
cu = ctypes.CDLL('libcuda.so.1')
cu.cuInit(0)
dev = ctypes.c_int(); cu.cuDeviceGet(ctypes.byref(dev), 0)
ctx = ctypes.c_void_p(); cu.cuCtxCreate_v2(ctypes.byref(ctx), 0, dev)
ptr = ctypes.c_uint64(); print("cuMemAlloc", cu.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(1 << 30)), flush=True)
time.sleep(6)
PY
  pypid=$!
  for i in $(seq 50); do
    nvidia-smi --query-compute-apps=pid --format=csv,noheader | grep -q "$pypid" && break
    sleep 0.1
  done
  echo "cuda holder pid $pypid"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | tee "$out/smi-apps2.csv"
  "$out/nvml_dump" | tee "$out/dump2.txt"
  wait $pypid
fi
exit $rc
