"""ASR stage: NVIDIA NeMo over sharded manifests (duration-aware batching, long audio, isolation) and evaluation.

Importing this package is light: torch and NeMo are imported in the worker's setup(), never at import.
"""
