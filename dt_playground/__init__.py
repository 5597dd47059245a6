"""DT Playground: Decision Transformers you can watch.

The library under the app: environments, behaviour policies, Minari datasets,
Decision Transformer / BC models, training, batched return-conditioned
rollouts, rendering, checkpoints and plots. Nothing here imports gradio.
"""

__version__ = "0.1.0"
