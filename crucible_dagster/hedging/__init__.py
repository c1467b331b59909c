"""Hedging: hedged requests that cut a backend's tail latency."""
