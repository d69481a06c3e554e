"""Weakness-triage CDS Hooks service: recognises the findings of the Weakness care guide in FHIR R4 Observations."""

__version__ = "0.1.0"
