"""MLflow tracking and registry: runs per run_key, resilient metric logging, the `facenet` model.

Pure MLflow (never Prefect). Submodules: uri (where runs live), runs (open/reopen a run with
params and provenance), datasets (the manifest and evaluation sets as the run's dataset inputs),
metrics (logging that survives a tracking outage), system (system metrics while training),
registry (log, link metrics to, register and alias the best model), contract and modelcard (what
a registered model expects, and its card), pyfunc (the embedding pyfunc and its preprocessing).
"""
