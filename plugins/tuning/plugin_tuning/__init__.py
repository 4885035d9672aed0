"""plugin-tuning: Optuna studies over any kernel workflow (``kernel tune``). See docs/tuning.md."""
