"""The pretrained zoo, reproducibly: recipes, cards, and `pretrain --verify`."""
