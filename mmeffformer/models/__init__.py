"""Models: backbones and the layers they share."""
