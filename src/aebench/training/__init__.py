"""Training: `trainer.train_replicate` trains one model of one seed, with its history,
resume state, unit-death record and MLflow run; `history` names the history's per-dimension
columns; `progress` prints how it goes, per job and per stage, with the time left."""
