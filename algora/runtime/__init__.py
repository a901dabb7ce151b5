"""The worker runtime: runs inside each model's environment, standard library only.

Copied at run time as the top-level package ``algora_runtime`` (see
``algora/workers/runtime_files.py``) and run by the environment's own interpreter, so every
module here imports only the standard library and its siblings (relatively).
"""
