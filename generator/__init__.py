"""MNIST Neuron Atlas: train a 784-100-10 sigmoid network and publish what each hidden neuron looks for."""
