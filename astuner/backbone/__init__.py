"""Backbones: ``debug`` (in-process, never trains); ``local`` and ``trinity`` arrive with their issues."""
