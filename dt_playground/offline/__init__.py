"""Offline RL beside the DT: IQL (config, maths, training, folders) and the DT's critic."""
