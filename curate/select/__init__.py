"""``thresher curate select``: top-k by a score, embedding diversity (k-center greedy) and
score-then-diversity (Deita) selection."""
