"""Datasets: procedural toy scenes, preparation of source folders, and the training reader."""
