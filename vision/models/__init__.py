"""Trained image models: classifiers, anomaly detection and the modality gate, with their metrics."""
