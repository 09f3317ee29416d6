"""Integrations of MoC attention into other libraries.

Each integration lives in its own sub-package and imports its host library only when used, so
``import moc`` never needs them:

* :mod:`moc.integrations.diffusers`: MoC attention processors for diffusers video DiTs (Wan 2.1/2.2,
  CogVideoX, HunyuanVideo, LTX-Video); ``apply_moc(transformer)`` / ``remove_moc(transformer)``.
"""
