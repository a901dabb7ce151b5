"""The reliability battery: faults injected from outside into a real ``algora serve``."""
