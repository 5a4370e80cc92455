"""flops_fit: compute-optimal scaling laws for your own PyTorch model, data and loss."""

__version__ = "0.1.0"
