"""Harnesses that drive lenga's jobs from outside (chaos runs), used by jobs/ and tests/ only."""
