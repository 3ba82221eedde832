"""The bottom layer: types every other layer shares, importing no torch, Ray, gRPC or PuLP.

- `steps`: the engine's typed step boundary (StepPlan in, StepResult out; decode settings,
  engine limits, step features) that the scheduler, the solver and the simulator read;
- `tokenizer`: the Tokenizer protocol the worker, the router and the benches are typed against;
- `locations`: where the shipped model and the published profiles live in the source tree.
"""
