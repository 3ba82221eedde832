"""The cluster simulator: the real router, controller, solver and worker scheduler on a modelled
clock with a simulated engine (docs/simulator.md). Entry points: `sim.simulator.Simulation`,
`sim.experiments.run_grid`, and `dilaserve bench --mode sim`."""
