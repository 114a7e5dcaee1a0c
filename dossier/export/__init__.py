"""Handing a dossier over to the municipality's record system (DESIGN section 6).

content    what an exporter gets: the dossier's metadata and content, as plain data
base       the Exporter protocol and the step ledger that makes every exporter idempotent
package    a signed ZIP with MDTO metadata that stands on its own for an archivist
verify     checking such a package (`balie export verify`)
zgw        the ZGW Documenten and Zaken APIs
"""
