"""Probabilistic matching: find the same person across records that share no identifier."""

from parcours.matching.linkage import DEFAULT_THRESHOLD, Linkage, link_records
from parcours.matching.model import MatchModel
from parcours.matching.records import PersonRecord

__all__ = ["DEFAULT_THRESHOLD", "Linkage", "MatchModel", "PersonRecord", "link_records"]
