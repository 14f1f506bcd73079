"""Delivery: RQ queues, the plan and batch jobs, public posts, pacing, rate limits,
the circuit breaker and crash recovery."""
