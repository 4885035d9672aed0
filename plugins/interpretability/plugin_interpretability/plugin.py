"""The hooks of plugin-interpretability. Nothing heavy here: Captum and torch are imported by the
code that computes attributions."""
from kernel import Component, Kind, hookimpl

M = "plugin_interpretability.methods:"

ATTRIBUTION = """Return the attribution methods the plugin offers, as a list of ``Component``.

``target(**params)`` returns an object with ``layer`` (None for a method on the input, or
"convolution" / "embedding": the kind of layer it attributes at when the user names none),
``gradient`` (true when it differentiates the model with respect to the input, which must then be
floating point) and ``attribute(forward, x, target, context) -> Tensor``: attributions for the batch
``x`` and the classes ``target`` (one per sample), where ``forward(x, *context.extra)`` returns the
class scores; ``context`` has ``baseline`` (the absent input, shaped like ``x``), ``extra``,
``layer`` (the module), ``internal_batch_size`` and ``facts``. The result is shaped like ``x`` for an
input method and like the layer's output for a layer method. docs/interpretability.md has the whole
contract and a worked example."""


@hookimpl
def kernel_kinds():
    return [Kind("attribution", ATTRIBUTION, check=M + "check_method")]


@hookimpl
def kernel_attributions():
    tags = ("gradient",)
    return [
        Component("interpret.integrated_gradients", M + "IntegratedGradients",
                  "Integrated gradients: path integral of gradients from a baseline (Captum)", tags),
        Component("interpret.saliency", M + "Saliency", "Saliency: the gradient's magnitude (Captum)", tags),
        Component("interpret.input_x_gradient", M + "InputXGradient", "Input times gradient (Captum)", tags),
        Component("interpret.deeplift", M + "DeepLift", "DeepLIFT, the Rescale rule (Captum)", tags),
        Component("interpret.gradient_shap", M + "GradientShap", "GradientSHAP: expected gradients (Captum)", tags),
        Component("interpret.occlusion", M + "Occlusion", "Occlusion: a sliding window replaced by the baseline (Captum)",
                  ("perturbation",)),
        Component("interpret.feature_ablation", M + "FeatureAblation",
                  "Feature ablation: groups of the input replaced by the baseline (Captum)", ("perturbation",)),
        Component("interpret.grad_cam", M + "GradCam", "Grad-CAM at the last convolution, stretched to the input (Captum)",
                  ("layer", "gradient")),
        Component("interpret.layer_integrated_gradients", M + "LayerIntegratedGradients",
                  "Integrated gradients at a layer; by default the embedding: one value per token (Captum)",
                  ("layer", "gradient")),
    ]


@hookimpl
def kernel_renderers():
    return [Component("interpret.heatmap", "plugin_interpretability.renderer:Heatmap",
                      "Any attribution: signed bars for a vector, a heat map otherwise (the fallback)",
                      ("generic",))]


@hookimpl
def kernel_methods():
    return {"LoadedRun.explain": "plugin_interpretability.api:explain"}


@hookimpl
def kernel_report_sections(runs, workspace):
    from .report_section import sections

    return sections(runs, workspace)


@hookimpl
def kernel_commands(cli):
    from .command import register

    register(cli)
