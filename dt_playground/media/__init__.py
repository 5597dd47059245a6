"""What people see: headless GL, replays into frames, H.264 video, the grid's tiles, plotly
figures.
"""
