"""`bespoke tune`: search a run's settings with Optuna, each trial an ordinary bespoke run (`trial-N`), scored
epoch by epoch while it trains and pruned at a clean point when it is hopeless.

- `space.py`: the search space TOML, validated like a preset (every value a real sd-scripts, dataset or bespoke
  key; every corner of the space planned and checked before anything runs).
- `study.py`: the study's folder and storage (an Optuna journal file beside the outputs, or `--storage URL`), the
  sampler and pruner, who may take which trial (asking, budget and orphaned trials under one lock).
- `trial.py`: one trial: plan its run, train it with the live score reported to Optuna, tell the outcome.
- `worker.py`: a worker pulls trials until the budget is spent; `--gpus` one worker per GPU.
- `slurm.py`: `tune --slurm N`: N array tasks, each a worker on the shared storage; cancel.
- `report.py`: `tune report`: the trials, the best and its margin, importances, a review of the top trials.
"""
