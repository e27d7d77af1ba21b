"""Stand-in for sd-scripts `networks/lora.py`: `create_network` builds a network whose `save_weights(file, dtype,
metadata)` writes a real safetensors LoRA file in place, like the real one (a stop mid-write cuts it: bespoke's gate
guards this method). FAKE_TRAINER_SLOW_IN=save (FAKE_TRAINER_SLOW_SECONDS, default 3): epoch 1's checkpoint is
written half, `fake trainer: slow in save` printed, and the rest written after the pause."""

from __future__ import annotations

import os
import time
from pathlib import Path


class FakeLoRANetwork:
    def __init__(self, network_dim, network_alpha):
        self.dim, self.alpha = int(network_dim or 4), float(network_alpha or 1)
        self.epoch = 0  # what the fake has "learned": its tensors follow it

    def tensors(self) -> dict:
        import numpy as np

        rng = np.random.default_rng(max(self.epoch, 0))
        return {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": rng.normal(size=(self.dim, 8)).astype(np.float16),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": np.zeros((8, self.dim), np.float16),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": np.array(self.alpha, np.float16),
        }

    def save_weights(self, file, dtype, metadata):
        from safetensors.numpy import save

        data = save(self.tensors(), metadata=metadata)
        with open(file, "wb") as handle:  # in place, as safetensors' save_file does
            if os.environ.get("FAKE_TRAINER_SLOW_IN") == "save" and metadata.get("ss_epoch") == "1":
                handle.write(data[: len(data) // 2])
                handle.flush()
                print("fake trainer: slow in save", flush=True)
                time.sleep(float(os.environ.get("FAKE_TRAINER_SLOW_SECONDS", "3")))
                handle.write(data[len(data) // 2:])
            else:
                handle.write(data)
        return Path(file)


def create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):
    return FakeLoRANetwork(network_dim, network_alpha)
