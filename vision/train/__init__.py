"""Reproduce the shipped models from ../shared/data with a fixed seed (`vesalius train MODEL`)."""
