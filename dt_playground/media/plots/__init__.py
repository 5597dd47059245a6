"""Plotly figures: pure functions from results to `plotly.graph_objects.Figure`."""
