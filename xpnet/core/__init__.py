"""The math of a network, written once against the array API: activations, losses, layers, initial
weights, the generic primitives and ONE forward/backward pass (:mod:`.network`)."""
