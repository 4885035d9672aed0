"""The hooks of plugin-onnx. Nothing heavy here: torch, onnx and onnxruntime are imported by the
code that exports, verifies or predicts."""
from kernel import hookimpl
from kernel import Component

E = "plugin_onnx.exporters:"


@hookimpl
def kernel_exporters():
    return [
        Component("onnx.onnx", E + "OnnxExporter", "ONNX (torch.onnx's dynamo exporter), run by onnxruntime",
                  ("onnx", "onnxruntime")),
        Component("onnx.torchscript", E + "TorchScriptExporter",
                  "TorchScript: traced, or scripted where tracing would freeze control flow", ("torchscript",)),
        Component("onnx.exported_program", E + "ExportedProgramExporter",
                  "torch.export's ExportedProgram (.pt2), for AOTInductor and ExecuTorch", ("torch.export",)),
    ]


@hookimpl
def kernel_commands(cli):
    from .command import register

    register(cli)


@hookimpl
def kernel_sections():
    return [Component("export", "plugin_onnx.section:Export",
                      summary="[export]: export each run's best model when `kernel run` ends, verified",
                      example={"formats": ["onnx"]})]


@hookimpl
def kernel_methods():
    return {"LoadedRun.export": "plugin_onnx.api:export"}


@hookimpl
def kernel_report_sections(runs, workspace):
    if not any(isinstance(run, dict) and run.get("exports") for run in runs):
        return []
    from .report_section import sections

    return sections(runs, workspace)
