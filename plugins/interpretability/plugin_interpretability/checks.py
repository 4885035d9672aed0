"""Whether explanations mean something, and what they say over many samples.

- **Model randomisation** (Adebayo et al., 2018, "Sanity checks for saliency maps"): a method whose
  attributions barely change when the model's weights are re-initialised explains the input, not
  the model. The rank correlation (Spearman, of absolute values, per sample) between the trained
  model's attributions and a randomised copy's is reported; at or above :data:`THRESHOLD` the method
  is flagged.
- **Infidelity and max-sensitivity** (Yeh et al., 2019), Captum's: how well attributions predict
  the output's change under small perturbations (lower is better), and how much they change when
  the input moves a little (lower is steadier). Only for floating-point inputs: token ids have no
  small perturbation.
- **Per-class summary**: mean absolute attribution (each sample's normalised to sum 1) per region of
  the input, per token, per time-frequency band or per feature, grouped by the explained class.
"""
from __future__ import annotations

import copy
import math

import torch

#: a mean rank correlation at or above this between trained and randomised attributions fails
THRESHOLD = 0.5
#: perturbation size for infidelity and sensitivity, relative to the inputs' standard deviation
NOISE = 0.02
PERTURBATIONS = 5
TOP = 5


#: the re-initialisation's seed: not a small number a workflow's own seed is likely to be, so an
#: untrained model built with seed 0 is not "randomised" into itself
SEED = 1_000_003


def randomized(model: torch.nn.Module, seed: int = SEED) -> torch.nn.Module:
    """A copy of the model with every layer's weights re-initialised (the check's cascade, all at once)."""
    copied = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in copied.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return copied.eval()


def rank_correlations(a: torch.Tensor, b: torch.Tensor, lengths) -> list:
    """Spearman correlation of |a[i]| and |b[i]| per sample (None where one is constant)."""
    from scipy.stats import spearmanr

    out = []
    for i in range(a.shape[0]):
        x, y = _valid(a[i], lengths[i]).abs().flatten(), _valid(b[i], lengths[i]).abs().flatten()
        if x.numel() < 2 or float(x.std()) == 0 or float(y.std()) == 0:
            out.append(None)
            continue
        rho = spearmanr(x.numpy(), y.numpy()).statistic
        out.append(None if math.isnan(rho) else float(rho))
    return out


def _valid(a: torch.Tensor, length: int) -> torch.Tensor:
    """A token attribution without its padding; anything else as it is."""
    return a[:length] if a.ndim == 1 and length < a.shape[0] else a


def sanity(trained: torch.Tensor, random: torch.Tensor, lengths) -> dict:
    rhos = rank_correlations(trained, random, lengths)
    known = [r for r in rhos if r is not None]
    mean = sum(known) / len(known) if known else None
    return {"rank_correlation": None if mean is None else round(mean, 4), "per_sample": rhos,
            "threshold": THRESHOLD, "passed": None if mean is None else bool(mean < THRESHOLD)}


def faithfulness(forward, x, extra, attributions, targets, explain_fn) -> tuple[list, list]:
    """Captum's infidelity and max-sensitivity per sample, or Nones where they do not apply
    (integer inputs, attributions that are a layer's map of another shape)."""
    n = x.shape[0]
    if not x.dtype.is_floating_point:
        return [None] * n, [None] * n
    try:
        shaped = attributions.to(x.dtype).expand_as(x)
    except RuntimeError:
        return [None] * n, [None] * n
    from captum.metrics import infidelity, sensitivity_max

    scale = NOISE * (float(x.std()) or 1.0)

    def perturb(inputs):
        noise = torch.randn_like(inputs) * scale
        return noise, inputs - noise

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        inf = infidelity(forward, perturb, x, shaped.contiguous(), additional_forward_args=extra or None,
                         target=targets, n_perturb_samples=PERTURBATIONS, normalize=True)
        sens = sensitivity_max(explain_fn, x, perturb_radius=scale, n_perturb_samples=PERTURBATIONS,
                               target=targets, additional_forward_args=extra or None)
    return [_num(v) for v in inf.detach()], [_num(v) for v in sens.detach()]


def _num(value) -> float | None:
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else round(v, 6)


def summary(attributions: torch.Tensor, x: torch.Tensor, targets, lengths, classes, facts) -> dict:
    """Per explained class: the regions, tokens, bands or features with the most attribution."""
    groups: dict = {}
    for i in range(attributions.shape[0]):
        label = int(targets[i])
        name = str(classes[label]) if classes and 0 <= label < len(classes) else str(label)
        a = _valid(attributions[i], lengths[i]).abs()
        total = float(a.sum()) or 1.0
        parts = _parts(a / total, x[i][:lengths[i]] if not x.dtype.is_floating_point else x[i], facts)
        group = groups.setdefault(name, {"samples": 0, "values": {}})
        group["samples"] += 1
        for key, value in parts:
            group["values"][key] = group["values"].get(key, 0.0) + value
    out = {}
    for name, group in groups.items():
        mean = {k: v / group["samples"] for k, v in group["values"].items()}
        top = sorted(mean.items(), key=lambda kv: -kv[1])[:TOP]
        out[name] = {"samples": group["samples"], "top": [{"feature": k, "value": round(v, 4)} for k, v in top]}
    return out


def _parts(a: torch.Tensor, x: torch.Tensor, facts: dict) -> list:
    """``(name, share)`` pairs of one sample's normalised |attribution|, by the shape's meaning."""
    if not x.dtype.is_floating_point and a.ndim == 1:  # tokens: by the token's text
        vocabulary = facts.get("vocabulary")
        parts: dict = {}
        for token_id, value in zip(x.tolist(), a.tolist()):
            word = vocabulary[token_id] if vocabulary and 0 <= token_id < len(vocabulary) else f"#{token_id}"
            parts[word] = parts.get(word, 0.0) + value
        return list(parts.items())
    if a.ndim == 1:  # a feature vector
        return [(f"feature {j}", float(v)) for j, v in enumerate(a)]
    if a.ndim == 2 and x.ndim == 2 and a.shape == x.shape:  # (channels, time): time-frequency bands
        return _bands(a.sum(0), facts.get("sample_rate"))
    grid = a.sum(0) if a.ndim >= 3 else a  # (H, W) or a layer's 2-D map
    if grid.ndim == 1:
        grid = grid.unsqueeze(0)
    rows, cols = min(4, grid.shape[0]), min(4, grid.shape[1])
    pooled = torch.nn.functional.adaptive_avg_pool2d(grid[None, None], (rows, cols))[0, 0]
    pooled = pooled / (float(pooled.sum()) or 1.0)
    return [(f"region row {r + 1}, column {c + 1} of {rows}x{cols}", float(pooled[r, c]))
            for r in range(rows) for c in range(cols)]


def _bands(signal: torch.Tensor, rate) -> list:
    """A 1-D attribution's energy in 4 frequency bands x 5 time segments (its STFT's magnitude)."""
    n_fft = min(256, max(8, signal.shape[0] // 4))
    spec = torch.stft(signal.float(), n_fft, hop_length=n_fft // 2, window=torch.hann_window(n_fft),
                      return_complex=True).abs()
    pooled = torch.nn.functional.adaptive_avg_pool2d(spec[None, None], (4, 5))[0, 0]
    pooled = pooled / (float(pooled.sum()) or 1.0)
    seconds = signal.shape[0] / rate if rate else None
    out = []
    for f in range(4):
        band = f"{int(f * rate / 8)}-{int((f + 1) * rate / 8)} Hz" if rate else f"band {f + 1} of 4"
        for t in range(5):
            when = f"{t * seconds / 5:.2f}-{(t + 1) * seconds / 5:.2f} s" if seconds else f"segment {t + 1} of 5"
            out.append((f"{band}, {when}", float(pooled[f, t])))
    return out
