"""RoBERTa Lab: build the UI and launch it (Hugging Face Spaces runs this file).

Gradio reads GRADIO_SERVER_NAME and GRADIO_SERVER_PORT itself (Spaces sets 0.0.0.0:7860).
"""

from roberta.ui.app import build_app, launch_kwargs

demo = build_app()

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
