"""Reliability and security: nothing lost under duplicates, crashes, races, faults and bad input."""
