"""Envelope encryption for dossiers (DESIGN section 4).

* `keyring`  — key-encryption keys (KEKs), one per calendar month, outside the database.
* `envelope` — per-dossier data keys (DEKs) wrapped by a KEK; HKDF subkeys per purpose.
* `records`  — one AEAD call per chat message or small record.
* `stream`   — segmented AES-GCM for documents of any size in constant memory.
"""
