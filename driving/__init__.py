"""The driving domain: scenes, maps, agents, trajectories, the synthetic generator and rendering.

Knows nothing of RL or Ray.
"""
