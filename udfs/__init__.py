"""Thin Spark wrappers (Arrow/pandas UDFs) around lenga's pure science functions."""
