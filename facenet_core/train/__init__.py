"""Training: triplet loss and selection (loss), optimisers and schedules (optim), one step (step),
the epoch (engine), its state and checkpoints (state, checkpoints, rng), DDP (distributed, launch,
worker)."""
