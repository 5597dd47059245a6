"""The app's service layer, testable without Gradio: admission, sessions, worker processes,
background jobs, the checkpoint catalogue, and the plays and grids the handlers call.
"""
