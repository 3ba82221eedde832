"""`dilaserve bench --mode live|compare`: the serving policies on the running cluster, and the
simulator held to it (docs/live-bench.md).

- `workload`: a trace's requests as the shipped model's held-out task prompts (exact answers),
  with canvases and deadlines, and the same list as simulator jobs;
- `mapping`: a simulator `PolicySpec` as the live system runs it (worker scheduler settings,
  router kind, fixed-layout planner or the live planner), no new decision logic;
- `client`: open-loop replay through the router, timed at the client;
- `reference`: each prompt decoded alone at the reference threshold, the accuracy baseline;
- `run`: one policy on the embedded cluster (or a running router) -> the simulator's RunSummary;
- `compare`: the identical request list live and simulated, over seeds;
- `command`: what the CLI runs in these modes.
"""
