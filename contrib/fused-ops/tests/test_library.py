"""The kernel_fused library as a whole: every schema of csrc/ops.cpp reachable through kernel.fused with
a CPU kernel, the build's record, and the references taking over when the library is turned off."""
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

kernel_fused_ops = pytest.importorskip("kernel_fused_ops", reason="kernel-fused-ops is not built: pip install contrib/fused-ops")
from kernel import fused  # noqa: E402

OPS_CPP = pathlib.Path(__file__).resolve().parents[1] / "csrc" / "ops.cpp"


def schema_names() -> list[str]:
    """'name' or 'name.overload' of every m.def in ops.cpp."""
    names = re.findall(r'm\.def\(\s*"([\w.]+)\(', OPS_CPP.read_text(encoding="utf-8"))
    assert len(names) >= 8, f"expected the schemas of ops.cpp, found {names}"
    return names


def test_every_schema_is_found_with_a_cpu_kernel():
    assert fused.library_error() is None
    for qualified in schema_names():
        name, _, overload = qualified.partition(".")
        packet = fused.op(name)
        assert packet is not None, f"kernel.fused.op({name!r}) is None"
        assert hasattr(packet, overload or "default"), f"kernel_fused::{qualified} is not registered"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"kernel_fused::{qualified}", "CPU"), \
            f"kernel_fused::{qualified} has no CPU kernel"
    assert fused.op("no_such_operator") is None


def test_build_info_lists_the_cpu_kernels():
    info = kernel_fused_ops.build_info()
    assert "cpu" in info["devices"]
    assert info["torch"] == torch.__version__, "built against another torch: rebuild (pip install contrib/fused-ops)"


# The dispatching functions on fixed inputs; run here with the library and in a subprocess without it.
SAMPLES = r"""
import torch
from kernel import fused

def samples():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 6, 5), generator=g, dtype=torch.uint8).permute(0, 2, 3, 1)
    flip = torch.tensor([True, False, False, True])
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 4, 2, -100, 1, 3])
    x = torch.randn(3, 8, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(8, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 10, (3, 5), generator=g)
    padding = torch.tensor([[False] * 5, [False, False, True, True, True], [True] * 5])
    out = {"image_batch": fused.image_batch(images, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3], flip),
           "image_batch_list": fused.image_batch(list(images), [0.5], [0.2]),
           "cross_entropy": fused.cross_entropy(logits, target, label_smoothing=0.1),
           "bias_gelu": fused.bias_gelu(x, bias, "tanh"),
           "masked_mean_embedding": fused.masked_mean_embedding(weight, ids, padding)}
    for key in ("cross_entropy", "bias_gelu", "masked_mean_embedding"):
        out[key].sum().backward()
    out.update(grad_logits=logits.grad, grad_x=x.grad, grad_bias=bias.grad, grad_weight=weight.grad)
    return {k: v.detach() for k, v in out.items()}
"""


def test_references_run_when_the_library_is_disabled(tmp_path):
    script = SAMPLES + r"""
import sys
assert all(fused.op(name) is None for name in ("image_batch", "cross_entropy", "bias_gelu", "masked_mean_embedding"))
result = samples()
assert "kernel_fused_ops" not in sys.modules, "the library was loaded although disabled"
torch.save(result, sys.argv[1])
"""
    env = dict(os.environ, KERNEL_DISABLE_PLUGINS="fused_ops")
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "reference.pt")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    reference = torch.load(tmp_path / "reference.pt")

    namespace: dict = {}
    exec(SAMPLES, namespace)
    with_library = namespace["samples"]()
    assert fused.op("bias_gelu") is not None
    assert reference.keys() == with_library.keys()
    for key, value in reference.items():
        # float64 except the images (float32: one FMA against three roundings, see test_image_batch)
        tol = dict(rtol=1e-6, atol=2e-6) if value.dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(with_library[key], value, **tol, msg=lambda m, k=key: f"{k}: {m}")
