"""thresher.curate: score, filter, dedup, decontaminate and mix conversation rows."""

if __name__ != "thresher.curate":  # imported as a top-level folder, e.g. `import curate` from the repo root
    raise ImportError(
        "the 'curate' folder is installed as 'thresher.curate': use `import thresher.curate`, not `import curate`"
    )
