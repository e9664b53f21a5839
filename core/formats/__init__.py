"""Formats of this project's pages (``FORMAT_MODULE_PATH``), by language as Django looks
them up."""
