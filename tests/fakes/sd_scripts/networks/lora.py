"""Stand-in for sd-scripts `networks/lora.py`: importable, with the entry point the trainer looks up."""


def create_network(multiplier, network_dim, network_alpha, vae, text_encoder, unet, **kwargs):
    raise NotImplementedError("the fake trainer builds no network")
