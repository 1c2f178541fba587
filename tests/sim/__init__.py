"""Tests of the autoscaling simulator, its workloads, the simulate command and the quick modes of the benchmarks."""
