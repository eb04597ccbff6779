"""RoBERTa Lab: build the UI and launch it (Hugging Face Spaces runs this file)."""

import gradio as gr

with gr.Blocks(title="RoBERTa Lab") as demo:
    gr.Markdown("# RoBERTa Lab\nThe app is being built; the library is in `roberta/`.")

if __name__ == "__main__":
    demo.launch()
