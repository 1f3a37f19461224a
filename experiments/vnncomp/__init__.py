"""A VNN-COMP-style runner: any backend over an ``instances.csv``, results CSV with full times.

    python -m experiments.vnncomp instances.csv --timeout 100 [--verifier crown] [--out DIR]
        [--launcher basic|joblib|submitit_local|submitit_slurm]

``__main__.py`` checks every instance (a missing or unreadable file, an unsupported ONNX node or
VNN-LIB property ends the run with one line naming it, exit code 2, before anything is written),
then runs ``job.py`` as a Hydra multirun over the instance indices, so a launcher plugin spreads
a large suite over processes or a cluster; ``results.py`` writes ``results.csv``.
"""
