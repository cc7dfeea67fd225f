"""Test support shared by several test folders and by benchmarks/ (never by product code)."""
