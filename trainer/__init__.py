"""Training the paper's VGG13 on C-NMC-style cell folders (needs the ``train`` extra)."""
