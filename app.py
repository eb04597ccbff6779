"""RoBERTa Lab: build the UI and launch it (Hugging Face Spaces runs this file).

Gradio reads GRADIO_SERVER_NAME and GRADIO_SERVER_PORT itself (Spaces sets 0.0.0.0:7860).
"""

import os

import torch

from roberta.ui.app import build_app, launch_kwargs

# Half the cores for torch's intra-op pool: a training run and other visitors' requests share
# the process, and an oversubscribed pool ran ~10x slower on a busy 2-core host (measured).
torch.set_num_threads(int(os.environ.get("ROBERTA_LAB_THREADS") or max(1, os.cpu_count() // 2)))

demo = build_app()

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
