"""Training: `trainer.train_replicate` trains one model of one seed, with its history,
resume state, unit-death record and MLflow run; `progress` prints how it goes."""
