"""Verifier benchmark: every backend x method on one saved instance suite, with soundness checks.

    python -m experiments.bench_verifiers [--out results/verifier_bench] [--time-limit 8]
        [--verifiers ouroboros,crown,milp,lirpa_crown,lirpa_alpha_crown] [--nnet my.nnet ...] [--quick]

builds the suite (``suite.py``), runs a Hydra multirun of ``job.py`` over the verifier configs
(``conf/verifier/*.yaml``), and aggregates (``report.py``): results.csv, summary.md (solved counts,
summed instance times and each job's total wall time, compilation included), cactus.png (VERIFIED
and FALSIFIED apart, time limit drawn), scaling.png (width, depth, inputs, spread), and the list
of wrong verdicts (a VERIFIED contradicted by a re-checked counterexample on the same instance, or
a verdict against known ground truth). ``--quick`` builds the small subset the tests run.
"""
