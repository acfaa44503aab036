"""Obtaining, verifying, splitting and loading MNIST and Fashion-MNIST.

Modules: `official` (the files and their checksums), `idx` (parsing and
verifying), `sources` (where the files can come from), `splits` (the
train/val/test arrays and their info record), `prepared` (the file every later
stage reads), `binarize` (pixels as likelihood targets). Nothing is imported
here: a stage imports the modules it uses, and dvc.yaml lists exactly those.
"""
