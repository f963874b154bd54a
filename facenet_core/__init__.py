"""facenet-flow's ML library: data, detection, models, training, evaluation, tracking.

Never imports Prefect: every stage is a plain function that the Prefect tasks wrap.
"""

__version__ = "0.1.0"
