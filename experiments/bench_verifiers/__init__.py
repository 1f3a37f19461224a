"""Verifier benchmark: every backend x method on one saved instance suite, with soundness checks.

    python -m experiments.bench_verifiers [--out results/verifier_bench] [--time-limit 8]
        [--verifiers ouroboros,crown,milp,lirpa_crown,lirpa_alpha_crown] [--nnet my.nnet ...]

builds the suite (``suite.py``), runs a Hydra multirun of ``job.py`` over the verifier configs
(``conf/verifier/*.yaml``), and aggregates (``report.py``): results.csv, summary.md, cactus.png,
scaling.png, and the list of wrong verdicts (a VERIFIED contradicted by a re-checked
counterexample on the same instance, or a verdict against known ground truth).
"""
