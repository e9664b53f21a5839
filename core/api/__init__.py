"""DRF plumbing shared by every app's API: the error shape (``errors``), REST_FRAMEWORK's
default parser and paginator (``defaults``), throttles, the OpenAPI schema class and the
request guards (``middleware``).

This package's ``__init__`` imports nothing on purpose: REST_FRAMEWORK names classes in
these modules, DRF resolves them lazily, and ``rest_framework.views`` reads
DEFAULT_PARSER_CLASSES while it is being imported. ``defaults`` must therefore never import
DRF's views, and nothing here may import a module that does just by importing the package.
"""
