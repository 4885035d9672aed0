"""Builds ``kernel_fused_ops._C``: the C++ operators, and the CUDA ones where they can be built.

CPU kernels always (a C++17 compiler is needed). CUDA kernels when ``nvcc`` is found, the installed
torch is a CUDA build of the same major CUDA version, and either a GPU is visible or
``KERNEL_FUSED_OPS_CUDA=1`` asks for them (a login node without a GPU; ``TORCH_CUDA_ARCH_LIST``
then says which GPUs, default "8.0;9.0+PTX"). ``KERNEL_FUSED_OPS_CUDA=0`` never builds them.
The CPU code is compiled for the building machine's vector unit (AVX-512 where it has one, else
AVX2 + FMA) unless ``KERNEL_FUSED_OPS_PORTABLE=1``. What was built is written to ``kernel_fused_ops/build.json``,
which ``kernel plugins`` reads.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message: str):
    sys.stderr.write(f"\nkernel-fused-ops: {message}\nThe kernel and its plugins work without it (they run the "
                     f"pure-PyTorch references of these operators).\n\n")
    sys.exit(1)


try:
    import torch
    from torch.utils import cpp_extension
except ImportError:
    fail("torch is not installed in this environment; install torch first (the extension is compiled "
         "against the installed torch)")

# what torch.utils.cpp_extension compiles with: $CXX, else c++
if not shutil.which(os.environ.get("CXX", "c++")):
    fail(f"no C++ compiler found ({os.environ.get('CXX', 'c++')}: set CXX to g++ or clang++, or install one; "
         f"on Debian/Ubuntu: apt install g++)")
if not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
    fail(f"Python's C headers are missing ({sysconfig.get_paths()['include']}/Python.h); on Debian/Ubuntu: "
         f"apt install python3-dev")


def cpu_flags() -> list[str]:
    """The widest code path of ATen's Vectorized types this machine has (AVX-512, else AVX2 + FMA),
    as ATen chooses for its own kernels at run time; nothing (SSE2, 4 floats) for a portable build."""
    if os.environ.get("KERNEL_FUSED_OPS_PORTABLE") == "1":
        return []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return []
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq", "fma"} <= flags:
        return ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c",
                "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"]
    if {"avx2", "fma"} <= flags:
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    return []


def cuda_home() -> str | None:
    """The CUDA toolkit: torch's guess, unless that is a folder of wrappers (/usr/local/bin/nvcc
    makes it guess /usr/local) without the toolkit's headers; then /usr/local/cuda."""
    for home in (cpp_extension.CUDA_HOME, "/usr/local/cuda"):
        if home and os.path.isfile(os.path.join(home, "include", "cuda_runtime.h")) \
                and shutil.which(os.path.join(home, "bin", "nvcc")):
            return home
    return None


def cuda_includes() -> list[str]:
    """Headers ATen's CUDA code needs that a bare toolkit may lack (cuBLAS, cuSPARSE): the NVIDIA
    wheels torch was installed with carry them."""
    nvidia = os.path.join(os.path.dirname(os.path.dirname(torch.__file__)), "nvidia")
    return sorted(glob.glob(os.path.join(nvidia, "cu*", "include")) + glob.glob(os.path.join(nvidia, "*", "include")))


def want_cuda() -> tuple[bool, str]:
    setting = os.environ.get("KERNEL_FUSED_OPS_CUDA", "auto")
    if setting == "0":
        return False, "KERNEL_FUSED_OPS_CUDA=0"
    home = cuda_home()
    if home is None:
        return False, "nvcc not found"
    os.environ["CUDA_HOME"] = cpp_extension.CUDA_HOME = home
    if torch.version.cuda is None:
        return False, "torch is a CPU-only build"
    try:
        release = subprocess.run([os.path.join(home, "bin", "nvcc"), "--version"],
                                 capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return False, f"nvcc does not run ({exc})"
    major = torch.version.cuda.split(".")[0]
    if f"release {major}." not in release:
        return False, f"nvcc is not CUDA {major}.x, which torch was built with"
    if setting != "1" and not torch.cuda.is_available():
        return False, "no GPU visible (KERNEL_FUSED_OPS_CUDA=1 builds the CUDA kernels anyway)"
    if not torch.cuda.is_available():
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    return True, ""


cuda, why_not = want_cuda()
sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
# -fopenmp: at::parallel_for is an OpenMP loop in ATen's headers; without it the kernels run on one
# thread (the symbols resolve to the libgomp torch already loaded: one OpenMP runtime in the process)
openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []
flags = {"cxx": ["-O3", "-std=c++17", "-fvisibility=hidden", *openmp, *cpu_flags()]}
if cuda:
    sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    flags["nvcc"] = ["-O3", "--use_fast_math"]
    flags["cxx"].append("-DWITH_CUDA")
    extension = cpp_extension.CUDAExtension
else:
    extension = cpp_extension.CppExtension
    print(f"kernel-fused-ops: building CPU kernels only ({why_not})")

build = {"devices": ["cpu", "cuda"] if cuda else ["cpu"], "torch": torch.__version__,
         "cuda": torch.version.cuda if cuda else None, "cpu_flags": " ".join(f for f in flags["cxx"] if f.startswith("-m")),
         "cuda_skipped": None if cuda else why_not}
with open(os.path.join(HERE, "kernel_fused_ops", "build.json"), "w", encoding="utf-8") as f:
    json.dump(build, f, indent=2)

setup(ext_modules=[extension("kernel_fused_ops._C", sources, extra_compile_args=flags,
                             include_dirs=cuda_includes() if cuda else [])],
      cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)})
