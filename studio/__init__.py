"""Diffusion Studio: a local image studio for Stable Diffusion-family models."""

__version__ = "0.1.0"
APP_NAME = "Diffusion Studio"
