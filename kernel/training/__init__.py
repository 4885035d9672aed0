"""The default trainer (``kernel.supervised``), its callbacks, checkpoints and event dispatch."""
