"""Verifier benchmark: every backend x method on one saved instance suite, with soundness checks.

    vpals-bench [out=results/verifier_bench] [time_limit=8] [verifiers=ouroboros,crown,milp,...]
        [quick=true] [apps=nginx,redis] [nnet=[my.nnet,...]]      (or python -m experiments.bench_verifiers)

builds the suite (``suite.py``; the 17-input whole-domain predictors, trained normally and
certified, in ``predictors.py``), runs a Hydra multirun of ``job.py`` over the verifier configs
(``conf/verifier/*.yaml``), and aggregates (``report.py``): results.csv, summary.md (suite size,
solved counts with VERIFIED and FALSIFIED apart, summed instance times and each job's total wall
time, compilation included), cactus.png (VERIFIED and FALSIFIED apart, time limit drawn),
scaling.png (width, depth, inputs, spread), and the list of wrong verdicts (a VERIFIED contradicted
by a re-checked counterexample on the same instance, or a verdict against the planted ground truth
or the exact MILP). ``quick=true`` builds the small subset the tests run. Settings: ``cli.py``.
"""
