"""kernel_fused::bias_gelu and bias_gelu_backward against kernel.fused.bias_gelu_reference (F.gelu(x + bias)).

Tolerances: the kernel uses ATen's own GELU formulas and vectorised erf/tanh/exp, but F.gelu computes the
last few elements of a row with the scalar std:: functions, and grad_bias sums rows in another order than
autograd's sum: float32 rtol 1e-5, atol 1e-5 (grad_bias atol 1e-4, a sum of up to a few hundred terms);
float64 1e-12."""
import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

kernel_fused_ops = pytest.importorskip("kernel_fused_ops", reason="kernel-fused-ops is not built: pip install contrib/fused-ops")
from kernel import fused  # noqa: E402
from kernel_fused_ops.testing import OpRecorder, devices  # noqa: E402

APPROXIMATIONS = ["none", "tanh"]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}
BIAS_TOL = {torch.float32: dict(rtol=1e-5, atol=1e-4), torch.float64: dict(rtol=1e-12, atol=1e-11)}


def fused_and_reference(x, bias, approximate, grad=None):
    """Outputs and gradients (x, bias) of the fused op and of the reference, from the same inputs."""
    results = []
    for fn in (torch.ops.kernel_fused.bias_gelu, fused.bias_gelu_reference):
        xi, bi = x.detach().requires_grad_(), bias.detach().requires_grad_()  # new leaves, same strides
        out = fn(xi, bi, approximate)
        out.backward(torch.ones_like(out) if grad is None else grad)
        results.append((out.detach(), xi.grad, bi.grad))
    return results


def assert_agree(x, bias, approximate, grad=None):
    (out, gx, gb), (ref, ref_gx, ref_gb) = fused_and_reference(x, bias, approximate, grad)
    assert out.is_contiguous() and out.shape == ref.shape
    torch.testing.assert_close(out, ref, **TOL[x.dtype])
    torch.testing.assert_close(gx, ref_gx, **TOL[x.dtype])
    torch.testing.assert_close(gb, ref_gb, **BIAS_TOL[x.dtype])


# -- agreement with the reference ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("bias_gelu"))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_matches_reference_over_random_shapes(device, dtype, approximate):
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        rank = int(torch.randint(1, 4, (1,), generator=g))
        shape = [int(v) for v in torch.randint(1, 40, (rank,), generator=g)]
        shape[-1] = int(torch.randint(1, 70, (1,), generator=g))  # widths off the vector length too
        x = (torch.randn(shape, generator=g, dtype=dtype) * 3).to(device)
        bias = torch.randn(shape[-1], generator=g, dtype=dtype).to(device)
        assert_agree(x, bias, approximate, torch.randn(shape, generator=g, dtype=dtype).to(device))


@pytest.mark.parametrize("device", devices("bias_gelu"))
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
@pytest.mark.parametrize("view", ["transposed", "sliced", "expanded", "strided_bias"])
def test_matches_reference_for_non_contiguous_inputs(device, approximate, view):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(24, 40, generator=g).to(device)
    bias = torch.randn(40, generator=g).to(device)
    x = {"transposed": base[:, :24].t(), "sliced": base[::3, 1::2], "expanded": base[:1].expand(7, 40),
         "strided_bias": base[:, :20]}[view]
    b = torch.randn(40, generator=g).to(device)[::2] if view == "strided_bias" else bias[: x.shape[-1]]
    assert not x.is_contiguous() or not b.is_contiguous()
    assert_agree(x, b, approximate)


@pytest.mark.parametrize("device", devices("bias_gelu"))
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_extreme_values(device, approximate):
    x = torch.tensor([[-1e4, -40.0, -10.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 10.0, 40.0, 1e4]], device=device)
    assert_agree(x.double(), torch.zeros(11, dtype=torch.float64, device=device), approximate)
    assert_agree(x, torch.zeros(11, device=device), approximate)


@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_empty_and_degenerate_shapes(device):
    for shape in ((0, 16), (5, 0), (0,), (3, 0, 8)):
        x = torch.randn(shape, device=device, requires_grad=True)
        bias = torch.randn(shape[-1], device=device, requires_grad=True)
        out = torch.ops.kernel_fused.bias_gelu(x, bias, "none")
        assert out.shape == x.shape
        out.sum().backward()
        assert x.grad.shape == x.shape and torch.equal(bias.grad, torch.zeros_like(bias))
    assert_agree(torch.randn(9, device=device), torch.randn(9, device=device), "tanh")  # 1-D x
    assert_agree(torch.randn(6, 1, device=device), torch.randn(1, device=device), "none")  # width one


@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_grad_bias_is_deterministic(device):
    x, bias, grad = (torch.randn(3000, 100, device=device), torch.randn(100, device=device),
                     torch.randn(3000, 100, device=device))
    first = torch.ops.kernel_fused.bias_gelu_backward(grad, x, bias, "none")
    for _ in range(3):
        again = torch.ops.kernel_fused.bias_gelu_backward(grad, x, bias, "none")
        assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])


# -- autograd ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("bias_gelu"))
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_gradcheck_float64(device, approximate):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    bias = torch.randn(7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, b: torch.ops.kernel_fused.bias_gelu(x, b, approximate), (x, bias))
    xt = torch.randn(7, 5, generator=g, dtype=torch.float64).to(device).t().requires_grad_()  # non-contiguous
    assert torch.autograd.gradcheck(lambda x, b: torch.ops.kernel_fused.bias_gelu(x, b, approximate), (xt, bias))


@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_gradients_only_for_inputs_that_need_them(device):
    x, bias = torch.randn(5, 8, device=device), torch.randn(8, device=device)
    _, (_, ref_gx, ref_gb) = fused_and_reference(x, bias, "none")
    xg = x.clone().requires_grad_()
    torch.ops.kernel_fused.bias_gelu(xg, bias, "none").sum().backward()
    torch.testing.assert_close(xg.grad, ref_gx, **TOL[torch.float32])
    bg = bias.clone().requires_grad_()
    torch.ops.kernel_fused.bias_gelu(x, bg, "none").sum().backward()
    torch.testing.assert_close(bg.grad, ref_gb, **BIAS_TOL[torch.float32])
    assert not torch.ops.kernel_fused.bias_gelu(x, bias, "none").requires_grad


# -- argument checks -------------------------------------------------------------------------------------------
def test_rejects_bad_arguments_saying_what_was_expected():  # the CPU kernel's messages
    x, bias = torch.randn(4, 8), torch.randn(8)
    op = torch.ops.kernel_fused.bias_gelu
    with pytest.raises(RuntimeError, match='approximate must be "none" or "tanh", got "exact"'):
        op(x, bias, "exact")
    with pytest.raises(RuntimeError, match=r"last dimension \(8\) must equal bias's length \(7\)"):
        op(x, bias[:7], "none")
    with pytest.raises(RuntimeError, match="bias must have 1 dimension"):
        op(x, bias.view(1, 8), "none")
    with pytest.raises(RuntimeError, match="must have one dtype, got Float and Double"):
        op(x, bias.double(), "none")
    with pytest.raises(RuntimeError, match="must be float32 or float64, got Int"):
        op(x.int(), bias.int(), "none")
    with pytest.raises(RuntimeError, match=r"grad must have x's shape \[4, 8\], got \[4, 4\]"):
        torch.ops.kernel_fused.bias_gelu_backward(x[:, :4], x, bias, "none")


# -- registration ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_opcheck(device):
    g = torch.Generator().manual_seed(3)

    def r(*shape, dtype=torch.float32, grad=True):
        return torch.randn(shape, generator=g, dtype=dtype).to(device).requires_grad_(grad)

    samples = [(r(4, 8), r(8), "none"), (r(2, 3, 5, dtype=torch.float64), r(5, dtype=torch.float64), "tanh"),
               (r(9), r(9, grad=False), "none"), (r(6, 4).t(), r(6), "tanh"), (r(0, 3), r(3), "none")]
    for args in samples:
        torch.library.opcheck(torch.ops.kernel_fused.bias_gelu.default, args)
    for x, bias, approximate in samples:
        grad = torch.randn(x.shape, dtype=x.dtype, device=device)
        torch.library.opcheck(torch.ops.kernel_fused.bias_gelu_backward.default,
                              (grad, x.detach(), bias.detach(), approximate))


@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_dispatching_function_takes_the_fused_kernel(device):
    assert fused.op("bias_gelu") is not None and fused.has_kernel("bias_gelu", device)
    x = torch.randn(4, 6, device=device, requires_grad=True)
    bias = torch.randn(6, device=device, requires_grad=True)
    with OpRecorder() as recorder:
        out = fused.bias_gelu(x, bias, "tanh")
        out.sum().backward()
    assert "kernel_fused.bias_gelu.default" in recorder.ops
    assert "kernel_fused.bias_gelu_backward.default" in recorder.ops
    assert not any(name.startswith("aten.gelu") for name in recorder.ops)


@pytest.mark.slow
@pytest.mark.parametrize("device", devices("bias_gelu"))
def test_torch_compile_fullgraph_forward_and_backward_equal_eager(device):
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(lambda x, b: fused.bias_gelu(x, b, "none"), fullgraph=True, backend=counter)
    x, bias = torch.randn(8, 16, device=device), torch.randn(16, device=device)
    results = []
    for fn in (compiled, lambda x, b: fused.bias_gelu(x, b, "none")):
        xi, bi = x.clone().requires_grad_(), bias.clone().requires_grad_()
        out = fn(xi, bi)
        out.backward(torch.ones_like(out))
        results.append((out.detach(), xi.grad, bi.grad))
    assert "kernel_fused.bias_gelu.default" in counter.graphs[0].code  # the fused kernel, not the reference
    for compiled_value, eager_value in zip(*results):
        assert torch.equal(compiled_value, eager_value)
