"""Routing: chunk descriptors, candidates and top-k, perturbations, producing a ``RoutingPlan``."""

from moc.routing.graph import ChunkGraph, MandatoryGroup, chunk_graph
from moc.routing.plan import PlanStats, RoutingPlan
from moc.routing.router import chunk_descriptors, route

__all__ = [
    "ChunkGraph",
    "MandatoryGroup",
    "PlanStats",
    "RoutingPlan",
    "chunk_descriptors",
    "chunk_graph",
    "route",
]
