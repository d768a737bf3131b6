"""Adversarial losses, computed on D's logits."""
from .adversarial import D_LOSSES, G_LOSSES, d_loss, g_loss

__all__ = ["D_LOSSES", "G_LOSSES", "d_loss", "g_loss"]
