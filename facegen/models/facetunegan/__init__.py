"""facetunegan."""
