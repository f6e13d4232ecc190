"""The device runtime: frame sources, CUDA preprocessing, inference runtimes and the threaded pipeline."""
