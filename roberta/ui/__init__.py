"""The Gradio app: one module per tab, assembled in `app.py`. Only this package imports gradio."""
