"""Samples -> 24 px candidates -> reports: process, best-epoch selection, HTML, sheets, charts, baseline."""
