"""Stand-ins for the few sd-scripts `library` functions bespoke's preflight probe calls (no torch).

Only what bespoke/kohya/probe.py reaches: train_util (arguments, optimizer, scheduler, attention, precision,
prompt lines, and `train_util.torch`, a tiny torch stand-in), config_util (dataset TOML -> dataset group),
network_trainer (NetworkTrainer, which the fake train_network.py re-exports). The rules are the fake's
(tests/fakes/sd_scripts/fake_rules.py) where that module exists; the mechanics below mirror the real code.

Knobs (environment): FAKE_TRAINER_GPU = "bf16" (default: a CUDA GPU with bf16) | "fp16" (a GPU without bf16,
like a T4) | "none" (a CPU box); FAKE_TRAINER_MISSING = comma list of packages the fake pretends are not
installed (xformers, bitsandbytes).
"""
