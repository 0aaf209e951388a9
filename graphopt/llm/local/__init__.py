"""The embedded offline model (SmolLM2-135M-Instruct): weights, engines and the ``local`` backend."""
