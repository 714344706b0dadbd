"""The named display windows, as data: the command line lists them without loading numpy."""

# Conventional CT windows (HU); sources such as Radiopaedia's "windowing (CT)" list the same ranges.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
}
