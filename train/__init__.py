"""thresher.train: the built-in LoRA/DoRA trainer."""

if __name__ != "thresher.train":  # imported as a top-level folder, e.g. `import train` from the repo root
    raise ImportError(
        "the 'train' folder is installed as 'thresher.train': use `import thresher.train`, not `import train`"
    )
