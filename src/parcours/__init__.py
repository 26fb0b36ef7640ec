"""Parcours: an omnichannel customer-experience platform."""

__version__ = "0.1.0"
