"""plugin-onnx: verified exports of trained runs, and kernel predict without torch."""
