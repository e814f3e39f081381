"""leakfree: duplicate-aware, leak-free dataset splits for audio libraries, on Spark and Delta Lake."""

__version__ = "0.1.0"
