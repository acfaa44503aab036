"""Pieces every stage uses: params, errors, atomic files, device and seeding, MLflow."""
