"""Training of the multi-shot DiT: configs, the schedule, checkpoints, the memory probe and the loop."""

from moc.train.checkpoint import CheckpointError, load_model, save_model
from moc.train.config import ConfigError, TrainConfig, config_from_dict, load_config
from moc.train.trainer import train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "load_model",
    "save_model",
    "train",
]
