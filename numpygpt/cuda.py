"""`torch.cuda`, for code written for PyTorch: numpygpt computes on the CPU only.

`device = torch.device("cuda" if torch.cuda.is_available() else "cpu")`, the
book's first line of every training script, picks the CPU.
"""


def is_available() -> bool:
    """Always False: numpygpt has no GPU device."""
    return False


def device_count() -> int:
    return 0
