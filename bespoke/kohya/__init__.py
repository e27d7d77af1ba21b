"""Everything that speaks kohya-ss sd-scripts: options, configs, presets, prompts, launch argv, output, checkpoints."""
