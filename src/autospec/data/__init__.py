"""Cohort data: readers for real formats, preprocessing, generated demo data."""
