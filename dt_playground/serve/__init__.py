"""The app's service layer: admission, sessions, worker processes, jobs, the handlers
(`ui`, the one module that imports gradio) and what they call.
"""
