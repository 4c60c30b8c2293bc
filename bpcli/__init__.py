"""bp: train neural networks with backpropagation from a YAML config and a CSV file."""

__version__ = "0.1.0"
