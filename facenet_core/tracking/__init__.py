"""MLflow tracking and registry: runs per run_key, resilient metric logging, the `facenet` model.

Pure MLflow (never Prefect). Submodules: uri (where runs live), runs (open/reopen a run with
params and provenance), metrics (logging that survives a tracking outage), registry (log,
register and alias the best model), pyfunc (the embedding pyfunc and its preprocessing).
"""
