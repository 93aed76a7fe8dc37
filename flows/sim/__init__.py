"""Simulated and imported traffic: the business simulator and importers of real-data files.

`flows.sim.business` describes a business (agents, shifts, lead sources, volume);
`flows.sim.simulator` turns one into a deterministic stream of SPEC §1 events;
`flows.sim.importers` converts real third-party data sets into the same events.
"""
