"""imgzoo: train and compare image-classification models with Snakemake, locally or on SLURM."""

__version__ = "0.1.0"
