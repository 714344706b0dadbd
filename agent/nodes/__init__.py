"""The graph's nodes: plain functions of (state, deps) returning the state keys they change."""
