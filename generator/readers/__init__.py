"""One reader per file format of a trained network, each returning the same `Layers`.

The formats are told apart by their content (generator.weights.sniff), not by their name. Every reader
returns the network's two linear layers as the file stores them, plus what the file says about the
activations; generator.weights turns that into W1 (H, D), b1 (H,), W2 (K, H), b2 (K,). Nothing is ever
unpickled: PyTorch files go through torch.load(weights_only=True), which loads tensors only.
"""
