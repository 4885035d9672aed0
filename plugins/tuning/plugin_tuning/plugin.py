"""The hooks of plugin-tuning. Nothing heavy here: Optuna is imported by the code that runs a study."""
from kernel import Component, hookimpl


@hookimpl
def kernel_sections():
    return [Component("tuning", "plugin_tuning.section:Tuning",
                      summary="[tuning]: the search space and the study's settings for `kernel tune`",
                      example={"space": {"trainer.epochs": {"int": [1, 3]}}})]


@hookimpl
def kernel_methods():
    return {"Workflow.tune": "plugin_tuning.api:tune"}


@hookimpl
def kernel_report_sections(runs, workspace):
    if not any(isinstance(run, dict) and run.get("study") for run in runs):
        return []  # no tuned run on the page: nothing to import
    from .report_section import sections

    return sections(runs, workspace)


@hookimpl
def kernel_commands(cli):
    from .command import register

    register(cli)
    cli.run_field("study", help="only runs of this tuning study (`kernel tune --study`)")
