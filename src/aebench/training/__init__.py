"""Training: `trainer.train_replicate` trains one model of one seed, with its history,
resume state, unit-death record and MLflow run; `stacked.train_stacked` trains several seeds of one
model as one stacked model (on a GPU), each with what `train_replicate` would write; `history` names the history's per-dimension
columns; `progress` prints how it goes, per job and per stage, with the time left."""
