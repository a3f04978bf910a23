"""thresher.distill: generate teacher responses (vLLM, OpenAI-compatible servers, transformers)."""

if __name__ != "thresher.distill":  # imported as a top-level folder, e.g. `import distill` from the repo root
    raise ImportError(
        "the 'distill' folder is installed as 'thresher.distill': use `import thresher.distill`, not `import distill`"
    )
