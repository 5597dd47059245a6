"""The app layer: everything that speaks Gradio, and every view (handlers, layout pieces,
texts, the Markdown and figures the tabs show). The only package that imports gradio."""
