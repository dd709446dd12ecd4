"""Scenarios of the receiving side: crashes, stops, a full disk, bad input, clocks."""
