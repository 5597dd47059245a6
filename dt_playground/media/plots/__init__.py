"""Plotly figures: pure functions from results to `go.Figure`."""
