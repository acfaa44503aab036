"""Training: `train_model(model, train_images=, val_images=, paths=TrainingPaths(...), device=, run=RunSpec(...))`.

Per-epoch history CSV and resume state (atomic), resume of a killed run to the
same bits, NaN refusal, MLflow logging, progress bars or plain lines.
"""

from aebench.training.trainer import TrainingPaths, evaluate_terms, resume_key, train_model

__all__ = ["TrainingPaths", "evaluate_terms", "resume_key", "train_model"]
