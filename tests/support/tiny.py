"""A preset small enough to run the whole facenet-train flow in seconds on a CPU."""

TINY = {
    "dataset": {
        "name": "tiny",
        "generate": "synthetic",
        "synthetic": {
            "num_train_identities": 6,
            "num_eval_identities": 4,
            "images_per_identity": 4,
            "seed": 1,
            "pairs_per_fold": 2,
        },
        "images_subdir": "train",
    },
    "eval_sets": [{"name": "tiny-eval", "dataset": "tiny", "root": "eval", "pairs": "pairs.txt"}],
    "model_architecture": "resnet18",
    "embedding_dimension": 16,
    "image_size": 32,
    "epochs": 2,
    "iterations_per_epoch": 2,
    "batch_size": 6,
    "num_human_identities_per_batch": 3,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "eval_batch_size": 32,
    "num_workers": 0,
    "crop_shard_size": 3,
    "crop_workers": 1,
    "device": "cpu",
    "log_every_n_steps": 1,
}
