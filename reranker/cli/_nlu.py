"""Commands of this layer register on ``reranker.cli._app.app`` when imported."""
